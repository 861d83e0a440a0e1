"""The web tier's side of the lab host stays on its side."""

from __future__ import annotations

import random
import uuid
from typing import Any

import pytest
import redis

from playground import labclient, labprotocol
from playground.labclient import LabRefused, alab_create
from playground.labhost.limits import HostLimits
from tests.conftest import python_check


def test_the_web_tier_never_loads_the_lab_host_process(server_env: dict[str, str]) -> None:
    # Views, consumers and the ASGI application reach the host over Redis and the Channels
    # layer only: the host's code (and whatever only it uses) is never imported there; its
    # limits (plain numbers) may be.
    code = (
        "import sys, django; django.setup();"
        "import config.asgi, playground.views, playground.consumers, playground.labclient;"
        "loaded = sorted(m for m in sys.modules if m.startswith('playground.labhost.'));"
        "assert set(loaded) <= {'playground.labhost.limits'}, loaded"
    )
    python_check(code, server_env)


async def test_the_client_address_reaches_the_host_and_its_limit(start_labhost: Any) -> None:
    running = await start_labhost(limits=HostLimits(max_labs=10, max_per_address=1))
    config = {"mode": "stateful", "workers": 1, "users": 1, "rate": 5.0, "sticky": True}
    await alab_create(lab_id=uuid.uuid4().hex[:10], owner="a", config=config, address="192.0.2.1")
    assert [h.address for h in running.host.labs.values()] == ["192.0.2.1"]
    with pytest.raises(LabRefused, match="your network address"):
        await alab_create(
            lab_id=uuid.uuid4().hex[:10], owner="b", config=config, address="192.0.2.1"
        )
    await alab_create(lab_id=uuid.uuid4().hex[:10], owner="c", config=config, address="192.0.2.2")
    assert len(running.host.labs) == 2


@pytest.mark.parametrize(
    ("why", "message"),
    [
        (labprotocol.WATCH_STOPPED, "The owner stopped sharing this lab."),
        (labprotocol.WATCH_LAB_CLOSED, "This lab has ended, and its sharing with it."),
        ("1", labclient.SHARING_ENDED_UNKNOWN),  # what a host before the reasons wrote
    ],
)
def test_a_retired_watch_code_says_why_its_sharing_ended(
    settings: Any, why: str, message: str
) -> None:
    code = "".join(random.choice(labprotocol.WATCH_ALPHABET) for _ in range(8))
    assert labclient.watch_find(code) is None  # never shared: 404, not 410
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        client.set(labprotocol.watch_ended_key(code), why, ex=60)
        try:
            with pytest.raises(labclient.WatchEnded) as ended:
                labclient.watch_find(code)
        finally:
            client.delete(labprotocol.watch_ended_key(code))
    assert str(ended.value) == message
