"""The web tier's side of the lab hosts: which are alive, does a lab exist, whose is it and
on which host, start one on the least loaded host.

Views and consumers call these; nothing here keeps lab state in the web process. The host
processes are playground.labhost, which the web tier never imports: the two meet only over
Redis and the Channels layer, on the contract in playground.labprotocol. The fleet's set,
each host's heartbeat and the registry of labs are Redis keys (the last two with short
TTLs, see labprotocol), so a dead host is noticed within seconds.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Any, cast

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from playground import labprotocol
from playground.labhost.limits import StartLimits

CREATE_TIMEOUT = 5.0
HOST_LATE = "The lab host did not answer in time. Is it running? Start it with make run."


class LabHostUnavailable(Exception):
    """No lab host is running, or it did not answer. The message is for the learner."""


class LabRefused(Exception):
    """The lab host would not start the lab (full, bad settings). The message is for the learner."""


class LabEnded(Exception):
    """The lab has ended (or never was): there is nothing of it left to ask for."""


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
    host: str = ""
    watch: str = ""  # its watch code while it is shared with a class

    def owned_by(self, owner: str | None) -> bool:
        return bool(owner) and labprotocol.owner_digest(str(owner)) == self.owner_digest


@dataclass(frozen=True)
class HostInfo:
    """A live lab host of the fleet, as its last heartbeat describes it."""

    name: str
    id: str
    labs: int
    max_labs: int
    accepting: bool

    @property
    def free(self) -> int:
        return max(0, self.max_labs - self.labs) if self.accepting else 0


@functools.cache
def _redis(url: str) -> redis.Redis:
    # One pool per process; sync, because views are sync. Short timeouts: a page must not
    # hang on a Redis that went away.
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def _client() -> redis.Redis:
    return _redis(str(settings.REDIS_URL))


def fleet() -> list[HostInfo]:
    """The live hosts of this site's fleet (settings.PLAYGROUND_FLEET), sorted by name.

    A Redis that is down raises (pages answer 503): it is an outage, not a dead fleet.
    """
    client = _client()
    names = [
        n.decode()
        for n in cast(
            list[bytes], client.zrange(labprotocol.fleet_key(str(settings.PLAYGROUND_FLEET)), 0, -1)
        )
    ]
    if not names:
        return []
    beats = cast(list[bytes | None], client.mget([labprotocol.heartbeat_key(n) for n in names]))
    hosts = []
    for name, raw in zip(names, beats, strict=True):
        beat = labprotocol.heartbeat_parse(raw)
        if beat is not None:  # no heartbeat: a host that died (its entry stays a while)
            hosts.append(
                HostInfo(
                    name=name,
                    id=beat["id"],
                    labs=beat["labs"],
                    max_labs=beat["max_labs"],
                    accepting=beat["accepting"],
                )
            )
    return sorted(hosts, key=lambda h: h.name)


def hosts_by_load(hosts: list[HostInfo]) -> list[HostInfo]:
    """The hosts with room, least loaded first (by the share of their places in use; equal
    shares in random order, so that web processes placing at once spread their labs)."""
    room = [h for h in hosts if h.free > 0]
    random.shuffle(room)
    return sorted(room, key=lambda h: h.labs / h.max_labs)


def host_alive(name: str | None = None) -> bool:
    """Is the host `name` running; with no name, is any host of the fleet running."""
    if name is None:
        return bool(fleet())
    # A Redis that is down raises (pages answer 503): it is an outage, not a dead host.
    return bool(_client().exists(labprotocol.heartbeat_key(name)))


def lab_get(lab_id: str) -> LabRecord | None:
    """The registry's record of a running lab, or None if it has ended (or never was)."""
    if not labprotocol.LAB_ID.match(lab_id):
        return None
    # A Redis that is down raises (pages answer 503): it is an outage, not an ended lab.
    raw = cast(bytes | None, _client().get(labprotocol.lab_key(lab_id)))
    if raw is None:
        return None
    data = json.loads(raw)
    return LabRecord(
        lab_id=lab_id,
        owner_digest=data["owner"],
        mode=data["mode"],
        host=str(data.get("host") or labprotocol.HOST_CHANNEL),
        watch=str(data.get("watch") or ""),
    )


class WatchEnded(Exception):
    """The watch code was real, but its lab is no longer shared (stopped, or ended)."""


# Why a code is no longer shared, as its watchers read it (the lab host records why).
SHARING_ENDED = {
    labprotocol.WATCH_STOPPED: "The owner stopped sharing this lab.",
    labprotocol.WATCH_LAB_CLOSED: "This lab has ended, and its sharing with it.",
}
SHARING_ENDED_UNKNOWN = "This lab is no longer shared: its owner stopped sharing it, or it ended."


def watch_find(code: str) -> LabRecord | None:
    """The shared lab a watch code names, or None if no lab was ever shared under it;
    raises WatchEnded, saying why, if its sharing has ended."""
    client = _client()
    lab_id = cast(bytes | None, client.get(labprotocol.watch_key(code)))
    record = lab_get(lab_id.decode()) if lab_id else None
    if record is not None and record.watch == code:
        return record
    why = cast(bytes | None, client.get(labprotocol.watch_ended_key(code)))
    if why is not None:
        raise WatchEnded(SHARING_ENDED.get(why.decode(errors="replace"), SHARING_ENDED_UNKNOWN))
    if lab_id:
        raise WatchEnded(SHARING_ENDED_UNKNOWN)
    return None


def lab_share(*, record: LabRecord, owner: str, share: bool) -> str | None:
    """Share the owner's lab with a class, or stop; returns its watch code (None: not
    shared). Raises LabHostUnavailable if its host does not answer, LabRefused if the lab
    is gone or not this owner's."""
    return async_to_sync(alab_share)(record=record, owner=owner, share=share)


async def alab_share(*, record: LabRecord, owner: str, share: bool) -> str | None:
    reply = await ahost_request(
        record.host, "lab.share", lab_id=record.lab_id, owner=owner, share=share
    )
    if reply.get("type") != "lab.shared":
        raise LabRefused(str(reply.get("message") or reply.get("reason") or "The lab is gone."))
    code = reply.get("code")
    return code if isinstance(code, str) else None


async def ahost_request(host: str, type_: str, **fields: Any) -> dict[str, Any]:
    """Send a `type_` message to a lab host and wait for its one reply."""
    layer, message = await _request(type_, **fields)
    return await _ask(layer, host, message, within=CREATE_TIMEOUT, late=HOST_LATE)


def host_instance(host: str) -> str | None:
    """The id of the process now serving `host` (from its heartbeat), or None if none does.

    A lab host restarted under the same name has a new id: the labs of the old one are gone.
    """
    try:
        raw = cast(bytes | None, _client().get(labprotocol.heartbeat_key(host)))
        return str(json.loads(raw)["id"]) if raw else None
    except (redis.RedisError, ValueError, KeyError, TypeError):
        return None


# -- limits of the lab sockets, kept in Redis so that they hold across web processes ------
# Each is a sorted set of socket channel names scored by when their claim lapses: a web
# process that dies leaves claims that lapse on their own. Redis errors let the socket
# through: with Redis gone the Channels layer is gone too, and the socket says so itself.

log = logging.getLogger("playground.labclient")


def socket_claim(*, key: str, socket: str, limit: int, now: float, lease: float) -> bool:
    """Count `socket` under `key`; False, and not counted, if that makes more than `limit`."""
    client = _client()
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now)
            pipe.zadd(key, {socket: now + lease})
            pipe.zcard(key)
            pipe.expire(key, math.ceil(lease) + 1)
            count = pipe.execute()[2]
        if count > limit:
            client.zrem(key, socket)
            return False
    except redis.RedisError as exc:  # an outage: one line, not a traceback
        log.warning("socket limits not checked: Redis failed (%s)", exc)
    return True


def socket_renew(*, keys: list[str], socket: str, now: float, lease: float) -> None:
    try:
        with _client().pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zadd(key, {socket: now + lease}, xx=True)
                pipe.expire(key, math.ceil(lease) + 1)
            pipe.execute()
    except redis.RedisError as exc:  # an outage: one line, not a traceback
        log.warning("socket claims not renewed: Redis failed (%s)", exc)


def socket_release(*, keys: list[str], socket: str) -> None:
    try:
        with _client().pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, socket)
            pipe.execute()
    except redis.RedisError as exc:  # an outage: one line, not a traceback
        log.warning("socket claims not released (they lapse): Redis failed (%s)", exc)


# GCRA, the token bucket as one timestamp: the "theoretical arrival time" of the next
# message. Times in milliseconds, so that the arithmetic is exact in Lua's doubles.
_COMMAND_ALLOW = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local allowance = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat + interval - now > allowance then return 0 end
redis.call('SET', KEYS[1], tat + interval, 'EX', ARGV[4])
return 1
"""


@functools.cache
def _command_allow_script(url: str) -> Any:
    return _redis(url).register_script(_COMMAND_ALLOW)


def command_allow(*, key: str, now: float, rate: float, burst: int) -> bool:
    """A token bucket kept in Redis: `rate` commands a second on average, bursts of `burst`."""
    interval = round(1000 / rate)
    try:
        script = _command_allow_script(str(settings.REDIS_URL))
        # The key outlives a full bucket by far: an idle key means a full bucket anyway.
        allowed = script(keys=[key], args=[round(now * 1000), interval, interval * burst, 60])
    except redis.RedisError as exc:  # an outage: one line, not a traceback
        log.warning("command rate not checked: Redis failed (%s)", exc)
        return True
    return bool(allowed)


NO_HOST = (
    "The lab host is not running: start it with make run "
    "(or python manage.py runlabs next to the web server)."
)


def lab_create(
    *,
    lab_id: str,
    owner: str,
    config: dict[str, Any],
    address: str,
    experiment: dict[str, Any] | None = None,
) -> str:
    """Start a lab for a client at `address` on the least loaded lab host with room; returns
    that host's name once it has accepted the lab (workers still starting).

    Raises LabHostUnavailable (no host, or no answer), LabStartsLimited (this address started
    too many labs lately) or LabRefused (every host full, too many running from this address,
    bad settings).
    """
    candidates = _candidates(fleet())
    key = address_key(address)
    lab_start_count(key=key, lab_id=lab_id)
    return async_to_sync(alab_create)(
        lab_id=lab_id,
        owner=owner,
        config=config,
        address=key,
        hosts=[h.name for h in candidates],
        experiment=experiment,
    )


def _candidates(hosts: list[HostInfo]) -> list[HostInfo]:
    """The hosts to ask, in order; raise if there are none."""
    if not hosts:
        raise LabHostUnavailable(NO_HOST)
    candidates = hosts_by_load(hosts)
    if not candidates:
        raise LabRefused(_full_message(hosts))
    return candidates


def _full_message(hosts: list[HostInfo]) -> str:
    places = sum(h.max_labs for h in hosts if h.accepting)
    if not places:
        return "Every lab host is restarting: try again in a minute."
    return (
        f"Every lab host is full ({places} labs on {len(hosts)} host"
        f"{'s' if len(hosts) > 1 else ''}). Try again later."
    )


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
    _window_count("starts", key=key, member=lab_id, limits=start_limits(), what="labs were started")


# Watch codes looked up per client address (so that guessing one is hopeless: see
# labprotocol.WATCH_CODE): a class behind one NAT address opens one link each, once.
# settings.PLAYGROUND_WATCH_LOOKUPS ({"per_window": N, "window": seconds}) overrides it: a
# class of more than 120 behind one address (or the watchers benchmark) needs more.
WATCH_LOOKUPS = StartLimits(per_window=120, window=60.0)


def watch_lookup_limits() -> StartLimits:
    overrides = getattr(settings, "PLAYGROUND_WATCH_LOOKUPS", None)
    return StartLimits(**overrides) if overrides else WATCH_LOOKUPS


def watch_lookup_count(*, address: str) -> None:
    """Count a watch-code lookup from `address`, or raise LabStartsLimited."""
    _window_count(
        "watch-lookups",
        key=address_key(address),
        member=f"{time.time_ns()}-{random.random()}",
        limits=watch_lookup_limits(),
        what="watch codes were tried",
    )


def _window_count(name: str, *, key: str, member: str, limits: StartLimits, what: str) -> None:
    """Count one event for `key` in its sliding window, or raise LabStartsLimited (saying
    how many `what` an address may) if the window is full."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # no addresses in Redis keys
    try:
        script = _client().register_script(_COUNT_START)
        wait = float(
            script(
                keys=[f"playground:{name}:{digest}"],
                args=[limits.window, limits.per_window, member],
            )
        )
    except redis.RedisError:
        raise LabHostUnavailable(
            "The playground cannot reach Redis right now. Try again in a moment."
        ) from None
    if wait > 0:
        raise LabStartsLimited(
            f"Too many {what} from your network address: at most "
            f"{limits.per_window} every {limits.window:g} seconds. "
            f"Try again in {math.ceil(wait)} s.",
            retry_after=max(1, math.ceil(wait)),
        )


# A host's refusal with this code is about that host (full, nearly full for this address,
# stopping): the next host may take the lab. Any other (bad settings, too many labs from
# this address on the host) is the learner's to read.
HOST_BUSY = 503


async def alab_create(
    *,
    lab_id: str,
    owner: str,
    config: dict[str, Any],
    address: str | None = None,
    hosts: list[str] | None = None,
    experiment: dict[str, Any] | None = None,
) -> str:
    """Ask the `hosts` in turn (default: the fleet's, least loaded first) to start the lab
    (running a lesson's `experiment` on it, if given: playground.labhost.experiment);
    returns the name of the host that took it."""
    if hosts is None:
        hosts = [h.name for h in _candidates(await asyncio.to_thread(fleet))]
    layer, message = await _request("lab.create", lab_id=lab_id, owner=owner, config=config)
    if address is not None:
        message["client"] = address
    if experiment is not None:
        message["experiment"] = experiment
    reply: dict[str, Any] = {}
    for host in hosts:
        reply = await _ask(
            layer,
            host,
            message,
            within=CREATE_TIMEOUT,
            late=HOST_LATE,
        )
        if reply.get("type") == "lab.created":
            return host
        if reply.get("code") != HOST_BUSY:
            break
    raise LabRefused(str(reply.get("message") or "The lab host refused to start the lab."))


RECORDING_TIMEOUT = 5.0


ENDED = (
    "This lab has ended, and its recording is gone: a lab's run can be saved while it runs "
    f"and for {labprotocol.RECORDING_KEPT_AFTER_END // 60} minutes after it ends."
)


def lab_recording(*, lab_id: str, owner: str) -> dict[str, Any]:
    """The recording of a lab (playground.labhost.recording), for its owner: a running
    lab's, from its host; a lab that has ended, from whichever live host still keeps it.

    Raises LabEnded (no recording of it anywhere), LabRefused (another session's lab: the
    message says so) or LabHostUnavailable (a host did not answer).
    """
    if not labprotocol.LAB_ID.match(lab_id):
        raise LabEnded(ENDED)
    record = lab_get(lab_id)
    # The registry forgets a lab when it closes; its host keeps the recording a while.
    hosts = [record.host] if record is not None else [h.name for h in fleet()]
    return async_to_sync(alab_recording)(lab_id=lab_id, owner=owner, hosts=hosts)


async def alab_recording(*, lab_id: str, owner: str, hosts: list[str]) -> dict[str, Any]:
    """Ask `hosts` in turn for the lab's recording; the first that has it answers."""
    layer, message = await _request("lab.recording", lab_id=lab_id, owner=owner)
    for host in hosts:
        reply = await _ask(
            layer,
            host,
            message,
            within=RECORDING_TIMEOUT,
            late="The lab host did not answer in time.",
        )
        if reply.get("type") == "lab.recording" and isinstance(reply.get("recording"), dict):
            return dict(reply["recording"])
        if reply.get("type") != "lab.closed":
            raise LabRefused(str(reply.get("message") or "The lab host refused."))
    raise LabEnded(ENDED)


async def _request(type_: str, **fields: Any) -> tuple[Any, dict[str, Any]]:
    """The Channels layer and a message to a lab host that wants an answer (on a reply
    channel of its own)."""
    layer = get_channel_layer()
    assert layer is not None
    return layer, {"type": type_, **fields, "reply_channel": await layer.new_channel()}


async def _ask(
    layer: Any, host: str, message: dict[str, Any], *, within: float, late: str
) -> dict[str, Any]:
    """Send `message` to `host`; its answer on the message's reply channel, or
    LabHostUnavailable(`late`) after `within` seconds."""
    await layer.send(host, message)
    try:
        # asyncio.timeout, never wait_for: see playground.lab.users.
        async with asyncio.timeout(within):
            return dict(await layer.receive(message["reply_channel"]))
    except TimeoutError:
        raise LabHostUnavailable(late) from None
