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
import hashlib
import ipaddress
import json
import math
from dataclasses import dataclass
from typing import Any, cast

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from playground import labprotocol
from playground.labhost.limits import StartLimits

CREATE_TIMEOUT = 5.0


class LabHostUnavailable(Exception):
    """No lab host is running, or it did not answer. The message is for the learner."""


class LabRefused(Exception):
    """The lab host would not start the lab (full, bad settings). The message is for the learner."""


class LabStartsLimited(LabRefused):
    """This client address started too many labs lately; `retry_after` seconds until it may."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


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


def lab_create(*, lab_id: str, owner: str, config: dict[str, Any], address: str) -> None:
    """Ask the lab host to start a lab for a client at `address`; returns once the host has
    accepted it (workers still starting).

    Raises LabHostUnavailable (no host, or no answer), LabStartsLimited (this address started
    too many labs lately) or LabRefused (full, too many running from this address, bad
    settings).
    """
    if not host_alive():
        raise LabHostUnavailable(
            "The lab host is not running: start it with make run "
            "(or python manage.py runlabs next to the web server)."
        )
    key = address_key(address)
    lab_start_count(key=key, lab_id=lab_id)
    async_to_sync(alab_create)(lab_id=lab_id, owner=owner, config=config, address=key)


def address_key(address: str) -> str:
    """What the per-address limits count by: the IPv4 address, or the /64 an IPv6 address is
    in (one household or phone gets a whole /64 and may pick any address within it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def start_limits() -> StartLimits:
    return StartLimits(**getattr(settings, "PLAYGROUND_START_LIMITS", {}))


# A sliding log per address: the start times of the last window, at most `limit` of them.
# One script, so two web processes cannot both take the last start; Redis's own clock, so
# web processes whose clocks differ still count the same window.
_COUNT_START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    redis.call('EXPIRE', KEYS[1], math.ceil(window))
    return '0'
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


def lab_start_count(*, key: str, lab_id: str) -> None:
    """Count a lab start for the address `key`, or raise LabStartsLimited if it has had its
    share of this window. Counted in Redis, so it holds across every web process."""
    limits = start_limits()
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # no addresses in Redis keys
    try:
        script = _client().register_script(_COUNT_START)
        wait = float(
            script(
                keys=[f"playground:starts:{digest}"],
                args=[limits.window, limits.per_window, lab_id],
            )
        )
    except redis.RedisError:
        raise LabHostUnavailable(
            "The playground cannot reach Redis right now. Try again in a moment."
        ) from None
    if wait > 0:
        raise LabStartsLimited(
            f"Too many labs were started from your network address: at most "
            f"{limits.per_window} every {limits.window:g} seconds. "
            f"Try again in {math.ceil(wait)} s.",
            retry_after=max(1, math.ceil(wait)),
        )


async def alab_create(
    *, lab_id: str, owner: str, config: dict[str, Any], address: str | None = None
) -> None:
    layer = get_channel_layer()
    assert layer is not None
    reply_channel = await layer.new_channel()
    message = {
        "type": "lab.create",
        "lab_id": lab_id,
        "owner": owner,
        "config": config,
        "reply_channel": reply_channel,
    }
    if address is not None:
        message["client"] = address
    await layer.send(host_name(), message)
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
