"""The contract between the web tier and the lab host: names, message shapes, validation.

Its own module, beside both sides rather than inside either: the host process
(playground.labhost) and the web tier (playground.labclient, the consumer) import it, and
it imports neither. No Django imports here. See docs/playground-contract.md for the prose
version.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
from typing import Any

from playground.lab.config import (
    BALANCING,
    MAX_RATE,
    MAX_STORE_LATENCY_MS,
    MAX_USERS,
    MAX_WORK_MS,
    MAX_WORKER_CONCURRENCY,
    MIN_RATE,
    MIN_SESSION_TTL,
    PERSISTENCE,
    SESSION_TTL,
    SETTABLE,
)

# Channels-layer names. Each lab host receives on a channel of its own (its name); each
# lab's snapshots go to the group `lab.<id>`; web processes get replies on their own reply
# channel. HOST_CHANNEL is the name of a host started with `--name labhost` (the benches).
HOST_CHANNEL = "labhost"
REDIS_PREFIX = "playground:"
# The hosts a web tier places labs on: a sorted set of host names (scored by when each last
# beat). Membership says "I take labs"; only a live heartbeat says "I am running".
DEFAULT_FLEET = "main"
# channels-redis's rule for a channel name (less its "!" suffix), and its length limit.
HOST_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,80}$")

# Close codes of the lab socket (4000-4999 are free for applications).
CLOSE_FORBIDDEN = 4403  # the lab belongs to another browser session
CLOSE_GONE = 4404  # the lab has ended, or never existed
CLOSE_HOST_DOWN = 4503  # the lab host stopped answering
CLOSE_TOO_MANY = 4429  # too many lab sockets (this session, this lab, or this web process)
CLOSE_UNSHARED = 4410  # a watcher's socket: the owner stopped sharing the lab

# Watch codes: a shared lab's read-only link, /watch/<code>/. Read aloud and typed by a
# class, so no look-alike characters (0/O, 1/I/L) and shown as two groups of four; 31**8
# (8.5e11) codes, against at most WATCH_LOOKUPS lookups a minute per client address.
WATCH_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
WATCH_CODE_LENGTH = 8
WATCH_CODE = re.compile(rf"^[{WATCH_ALPHABET}]{{{WATCH_CODE_LENGTH}}}$")
WATCH_ENDED_TTL = 24 * 3600  # an ended share answers 410 (not 404) for a day

MAX_MESSAGE_BYTES = 4096
WORKER_ACTIONS = frozenset({"kill", "stop", "pause", "resume", "restart", "remove_worker"})
LAB_ACTIONS = frozenset({"add_worker", "set", "reset", "deploy", "kill_store", "restart_store"})
# A class's question (playground.labhost.poll): the owner asks and closes it; a watcher
# answers (on the watch socket only, as lab.answer).
ASK_FIELDS = frozenset({"question", "kind", "choices", "figure"})
POLL_ACTIONS = frozenset({"ask", "close_question", "answer"})
# A lesson's experiment: the learner does the step its run waits for.
EXPERIMENT_ACTIONS = frozenset({"step"})
ACTIONS = WORKER_ACTIONS | LAB_ACTIONS | POLL_ACTIONS | EXPERIMENT_ACTIONS
# The web tier's rule for a lab id: the ids views draw (8 of a-z0-9), with room to spare.
# Narrower than the engine's (playground.lab.config.LAB_ID) on purpose: these ids arrive
# from browsers, in URLs and socket paths, and name Channels groups and registry keys in
# Redis, so anything else is refused at the edge before it reaches either.
LAB_ID = re.compile(r"^[a-z0-9]{6,16}$")
# The engine numbers workers on and on (worker-1000 after enough add/remove); the bound
# only keeps the name a name.
WORKER_NAME = re.compile(r"^worker-[1-9][0-9]{0,8}$")
# A command is one flat object: nothing in it nests. json.loads recurses once per level
# and a 4 KB frame of "[" is 4096 levels (RecursionError), so depth is checked first.
MAX_NESTING = 2
# Longest number literal worth parsing: every value the engine accepts is short, and
# Python's int() of a long digit string is quadratic (and refused past 4300 digits).
MAX_NUMBER_CHARS = 32
# The values of `set` the engine accepts, checked here too so that nothing out of range
# (a 30-digit int is an OverflowError in msgpack, on the Channels layer) leaves the web tier.
SET_RANGES: dict[str, tuple[float, float]] = {
    "users": (1, MAX_USERS),
    "rate": (MIN_RATE, MAX_RATE),
    "store_latency_ms": (0, MAX_STORE_LATENCY_MS),
    "store_jitter_ms": (0, MAX_STORE_LATENCY_MS),
    "work_ms": (0, MAX_WORK_MS),
    "worker_concurrency": (1, MAX_WORKER_CONCURRENCY),
    "session_ttl": (MIN_SESSION_TTL, SESSION_TTL),
}
SET_CHOICES: dict[str, tuple[str, ...]] = {"balancing": BALANCING}
# The figures each frame of a lab's recording keeps of its snapshot's metrics (the
# runscenario JSON keys): what the host records (playground.labhost.recording) and the web
# tier exports (playground.runs).
RUN_METRICS = (
    "requests_ok",
    "requests_failed",
    "sessions_lost",
    "carts_lost",
    "relogins",
    "rps",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
)

# How long a lab host keeps a closed lab's recording for its owner to save (seconds).
RECORDING_KEPT_AFTER_END = 600


class CommandError(ValueError):
    """A browser message that is not a valid command. The text is shown to the learner."""


def group_name(lab_id: str) -> str:
    return f"lab.{lab_id}"


def heartbeat_key(host: str) -> str:
    return f"{REDIS_PREFIX}labhost:{host}"


def fleet_key(fleet: str) -> str:
    return f"{REDIS_PREFIX}fleet:{fleet}"


def host_default_name() -> str:
    """A name no other running lab host has: this machine's name and this process's id."""
    machine = re.sub(r"[^a-zA-Z0-9_.-]", "-", socket.gethostname())[:60] or "host"
    return f"labhost-{machine}-{os.getpid()}"


def heartbeat_parse(raw: bytes | str | None) -> dict[str, Any] | None:
    """A heartbeat's value as the web tier needs it, or None if it is missing or garbled:
    {"id", "pid", "labs", "max_labs", "accepting"}."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return {
            "id": str(data["id"]),
            "pid": int(data["pid"]),
            "labs": int(data["labs"]),
            # Hosts older than the fleet sent only the first three: full but alive.
            "max_labs": int(data.get("max_labs", data["labs"])),
            "accepting": bool(data.get("accepting", False)),
        }
    except (ValueError, KeyError, TypeError):
        return None


def watch_key(code: str) -> str:
    """A shared lab's code: its value is the lab id (written and renewed by the lab host)."""
    return f"{REDIS_PREFIX}watch:{code}"


def watch_ended_key(code: str) -> str:
    """A code whose sharing has ended: 410, not 404. Its value says why: WATCH_STOPPED or
    WATCH_LAB_CLOSED."""
    return f"{REDIS_PREFIX}watch-ended:{code}"


WATCH_STOPPED = "stopped"  # the owner pressed `Stop sharing`
WATCH_LAB_CLOSED = "closed"  # the lab closed (stopped, idle, past its lifetime)


def watch_code_parse(text: str) -> str | None:
    """A watch code as typed (any case, with or without the dash or spaces), or None."""
    code = re.sub(r"[\s-]", "", text).upper()[: WATCH_CODE_LENGTH + 1]
    return code if WATCH_CODE.match(code) else None


def watch_code_display(code: str) -> str:
    """ABCD-EFGH: two groups, easier to read aloud."""
    half = WATCH_CODE_LENGTH // 2
    return f"{code[:half]}-{code[half:]}"


def lab_key(lab_id: str) -> str:
    return f"{REDIS_PREFIX}lab:{lab_id}"


def session_sockets_key(owner: str) -> str:
    """The lab sockets of one browser session (named by its owner token's digest)."""
    return f"{REDIS_PREFIX}sockets:session:{owner_digest(owner)}"


def lab_sockets_key(lab_id: str) -> str:
    return f"{REDIS_PREFIX}sockets:lab:{lab_id}"


def session_commands_key(owner: str) -> str:
    """The command rate limit of one browser session, shared by all its sockets."""
    return f"{REDIS_PREFIX}commands:{owner_digest(owner)}"


def owner_digest(owner: str) -> str:
    """What the registry stores instead of the owner token itself."""
    return hashlib.sha256(owner.encode()).hexdigest()


def command_parse(text_data: str | None, bytes_data: bytes | None = None) -> dict[str, Any]:
    """Validate one message from the browser; return {"action", "worker"?, "value"?}.

    The shape is checked here, at the edge; the values of `set` (ranges, balancing names)
    are checked by the lab engine, whose LabError comes back as an error message too.
    """
    if text_data is None:
        raise CommandError("Send commands as JSON text, not binary frames.")
    if len(text_data.encode(errors="surrogatepass")) > MAX_MESSAGE_BYTES:
        raise CommandError(f"Message too large: at most {MAX_MESSAGE_BYTES} bytes.")
    if _nesting(text_data) > MAX_NESTING:
        raise CommandError('A command is one flat JSON object such as {"action": "reset"}.')
    try:
        message = json.loads(
            text_data,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except CommandError:
        raise
    except (ValueError, RecursionError):
        raise CommandError("Message is not valid JSON.") from None
    if not isinstance(message, dict):
        raise CommandError('A command is a JSON object such as {"action": "reset"}.')
    action = message.get("action")
    if not isinstance(action, str) or action not in ACTIONS:
        raise CommandError(f"Unknown action {action!r}; use one of {', '.join(sorted(ACTIONS))}.")
    command: dict[str, Any] = {"action": action}
    rest = {k: v for k, v in message.items() if k != "action"}
    if action in WORKER_ACTIONS:
        worker = rest.pop("worker", None)
        if not isinstance(worker, str) or not WORKER_NAME.match(worker):
            raise CommandError(f'{action} needs a worker such as "worker-1", not {worker!r}.')
        command["worker"] = worker
    elif action == "set":
        if not rest:
            raise CommandError(f"set needs at least one of {', '.join(SETTABLE)}.")
        for key, value in rest.items():
            types = SETTABLE.get(key)
            if types is None:
                raise CommandError(f"set cannot change {key!r}; use {', '.join(SETTABLE)}.")
            if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                raise CommandError(f"set {key}: wrong type {type(value).__name__}.")
            if key in SET_RANGES and isinstance(value, int | float):
                low, high = SET_RANGES[key]
                if not low <= value <= high:
                    raise CommandError(f"set {key}: must be from {low:g} to {high:g}.")
            if key in SET_CHOICES and value not in SET_CHOICES[key]:
                raise CommandError(f"set {key}: one of {', '.join(SET_CHOICES[key])}.")
        command["value"] = rest
        rest = {}
    elif action == "ask":
        spec = {key: rest.pop(key) for key in ASK_FIELDS if key in rest}
        if not all(isinstance(value, str) for value in spec.values()):
            raise CommandError("ask takes text: question, kind, choices (one a line), figure.")
        command["value"] = spec
    elif action == "answer":
        value = rest.pop("value", None)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CommandError("answer needs a number: a choice's index, or your prediction.")
        command["value"] = value
    elif action == "restart_store" and "persistence" in rest:
        persistence = rest.pop("persistence")
        if persistence not in PERSISTENCE:
            raise CommandError(f"restart_store persistence: one of {', '.join(PERSISTENCE)}.")
        command["value"] = {"persistence": persistence}
    if rest:
        raise CommandError(f"Unexpected field(s) for {action}: {', '.join(sorted(rest))}.")
    return command


def _nesting(text: str) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise CommandError(f"Numbers in a command have at most {MAX_NUMBER_CHARS} characters.")
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal) if len(literal) <= MAX_NUMBER_CHARS else math.inf
    if not math.isfinite(value):  # 1e309 is inf
        raise CommandError("Numbers in a command must be finite.")
    return value


def _parse_constant(literal: str) -> float:
    raise CommandError(f"{literal} is not a number.")  # NaN, Infinity, -Infinity
