"""The site's Channels layer, as configured: channels-redis on the run's Redis.

What the lab host relies on: a group message reaches every member once, and a viewer
whose channel is full misses it instead of holding up the others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

# Each receive is bounded so that a lost message fails the test instead of hanging the run.
HANG_GUARD = 10
CAPACITY = 3


@pytest.fixture
async def layer() -> AsyncIterator[RedisChannelLayer]:
    config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "capacity": CAPACITY}
    layer = RedisChannelLayer(**config)
    yield layer
    await layer.close_pools()


async def receive(layer: RedisChannelLayer, channel: str) -> dict[str, Any]:
    async with asyncio.timeout(HANG_GUARD):
        return await layer.receive(channel)  # type: ignore[no-any-return]


async def drain(layer: RedisChannelLayer, channel: str) -> list[str]:
    """The types of every message waiting on channel, in order. A marker sent now comes out
    last, so what came before it is all there was: no waiting for silence."""
    marker = f"end-{uuid.uuid4().hex}"
    await layer.send(channel, {"type": marker})
    kinds = []
    while (kind := (await receive(layer, channel))["type"]) != marker:
        kinds.append(kind)
    return kinds


def test_the_site_uses_channels_redis_on_its_redis() -> None:
    layer = get_channel_layer()
    assert type(layer) is RedisChannelLayer
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] == [settings.REDIS_URL]


async def test_group_send_reaches_every_member_once(layer: RedisChannelLayer) -> None:
    group = f"g{uuid.uuid4().hex}"
    # Two process-local channels (one Redis key for both) and a plain named one.
    channels = [await layer.new_channel(), await layer.new_channel(), f"n{uuid.uuid4().hex}"]
    for channel in channels:
        await layer.group_add(group, channel)

    await layer.group_send(group, {"type": "lab.snapshot", "n": 1})

    for channel in channels:
        assert await receive(layer, channel) == {"type": "lab.snapshot", "n": 1}
        assert await drain(layer, channel) == []  # once, not twice


async def test_a_full_channel_misses_the_message_and_the_others_still_get_it(
    layer: RedisChannelLayer,
) -> None:
    group = f"g{uuid.uuid4().hex}"
    full, free = f"full{uuid.uuid4().hex}", f"free{uuid.uuid4().hex}"
    for channel in (full, free):
        await layer.group_add(group, channel)
    for n in range(CAPACITY):
        await layer.send(full, {"type": "old", "n": n})

    await layer.group_send(group, {"type": "new"})

    assert await drain(layer, free) == ["new"]
    assert [(await receive(layer, full))["type"] for _ in range(CAPACITY)] == ["old"] * CAPACITY
    assert await drain(layer, full) == []  # dropped, not queued behind the old ones
