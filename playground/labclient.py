"""The web tier's side of the lab host: is it alive, does a lab exist, whose is it, start one.

Views and consumers call these; nothing here keeps lab state in the web process. The host
process itself is playground.labhost, which the web tier never imports: the two meet only
over Redis and the Channels layer, on the contract in playground.labprotocol. The host's
heartbeat and its registry of labs are Redis keys with short TTLs (see labprotocol), so a dead
host is noticed within seconds.
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any, cast

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from playground import labprotocol

CREATE_TIMEOUT = 5.0


class LabHostUnavailable(Exception):
    """No lab host is running, or it did not answer. The message is for the learner."""


class LabRefused(Exception):
    """The lab host would not start the lab (full, bad settings). The message is for the learner."""


@dataclass(frozen=True)
class LabRecord:
    lab_id: str
    owner_digest: str
    mode: str

    def owned_by(self, owner: str | None) -> bool:
        return bool(owner) and labprotocol.owner_digest(str(owner)) == self.owner_digest


def host_name() -> str:
    return str(settings.PLAYGROUND_LABHOST)


@functools.cache
def _redis(url: str) -> redis.Redis:
    # One pool per process; sync, because views are sync. Short timeouts: a page must not
    # hang on a Redis that went away.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _client() -> redis.Redis:
    return _redis(str(settings.REDIS_URL))


def host_alive() -> bool:
    try:
        return bool(_client().exists(labprotocol.heartbeat_key(host_name())))
    except redis.RedisError:
        return False


def lab_get(lab_id: str) -> LabRecord | None:
    """The registry's record of a running lab, or None if it has ended (or never was)."""
    if not labprotocol.LAB_ID.match(lab_id):
        return None
    try:
        raw = cast(bytes | None, _client().get(labprotocol.lab_key(lab_id)))
    except redis.RedisError:
        return None
    if raw is None:
        return None
    data = json.loads(raw)
    return LabRecord(lab_id=lab_id, owner_digest=data["owner"], mode=data["mode"])


def lab_create(*, lab_id: str, owner: str, config: dict[str, Any]) -> None:
    """Ask the lab host to start a lab; returns once it has accepted (workers still starting).

    Raises LabHostUnavailable (no host, or no answer) or LabRefused (full, bad settings).
    """
    if not host_alive():
        raise LabHostUnavailable(
            "The lab host is not running: start it with make run "
            "(or python manage.py runlabs next to the web server)."
        )
    async_to_sync(alab_create)(lab_id=lab_id, owner=owner, config=config)


async def alab_create(*, lab_id: str, owner: str, config: dict[str, Any]) -> None:
    layer = get_channel_layer()
    assert layer is not None
    reply_channel = await layer.new_channel()
    await layer.send(
        host_name(),
        {
            "type": "lab.create",
            "lab_id": lab_id,
            "owner": owner,
            "config": config,
            "reply_channel": reply_channel,
        },
    )
    try:
        # asyncio.timeout, never wait_for: see playground.lab.users.
        async with asyncio.timeout(CREATE_TIMEOUT):
            reply = await layer.receive(reply_channel)
    except TimeoutError:
        raise LabHostUnavailable(
            "The lab host did not answer in time. Is it running? Start it with make run."
        ) from None
    if reply.get("type") != "lab.created":
        raise LabRefused(str(reply.get("message") or "The lab host refused to start the lab."))


class RateLimiter:
    """A token bucket: `rate` messages a second on average, bursts up to `burst`; a lab
    socket uses one so that a browser cannot flood the lab host with commands."""

    def __init__(self, *, rate: float, burst: int, clock: Any) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
