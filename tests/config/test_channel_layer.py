"""The site's Channels layer: its pipelined group_send delivers what channels-redis's does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from channels.layers import get_channel_layer

from config.channel_layer import RedisChannelLayer


@pytest.fixture
async def layer(redis_url: str) -> AsyncIterator[RedisChannelLayer]:
    layer = RedisChannelLayer(hosts=[redis_url], capacity=3, expiry=30)
    yield layer
    await layer.close_pools()


def test_the_site_uses_it() -> None:
    assert isinstance(get_channel_layer(), RedisChannelLayer)


async def test_group_send_reaches_every_member_once(layer: RedisChannelLayer) -> None:
    group = f"g{uuid.uuid4().hex}"
    # Two process-local channels (one Redis key for both) and a plain named one.
    local_a, local_b = await layer.new_channel(), await layer.new_channel()
    named = f"named{uuid.uuid4().hex}"
    for channel in (local_a, local_b, named):
        await layer.group_add(group, channel)

    await layer.group_send(group, {"type": "lab.snapshot", "n": 1})

    for channel in (local_a, local_b, named):
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert message == {"type": "lab.snapshot", "n": 1}
    for channel in (local_a, named):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 0.2)


async def test_a_full_channel_misses_the_message_and_the_others_still_get_it(
    layer: RedisChannelLayer,
) -> None:
    group = f"g{uuid.uuid4().hex}"
    full, free = f"full{uuid.uuid4().hex}", f"free{uuid.uuid4().hex}"
    for channel in (full, free):
        await layer.group_add(group, channel)
    for n in range(3):  # capacity 3
        await layer.send(full, {"type": "old", "n": n})

    await layer.group_send(group, {"type": "new"})

    assert (await asyncio.wait_for(layer.receive(free), 5))["type"] == "new"
    kinds = [(await asyncio.wait_for(layer.receive(full), 5))["type"] for _ in range(3)]
    assert kinds == ["old", "old", "old"]
    with pytest.raises(TimeoutError):  # dropped, as channels-redis drops it
        await asyncio.wait_for(layer.receive(full), 0.2)
