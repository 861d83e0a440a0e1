"""A scenario: one lab run for some seconds with actions at set times, and the report of
what was measured (the JSON keys of `runscenario`, which experiments compare).

Actions are written as on the command line (`4:kill:worker-1`, `2:set:sticky=off`).
No Django imports here: `runscenario`, the lessons' experiments and tests all use it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .config import CHAT_ONLY, SHOP_ONLY, LabConfig
from .errors import LabError
from .lab import Lab
from .process import find_orphans

MAX_SECONDS = 600.0
CHAT_SETTLE = 6.0  # a chat run's end: users stop sending; what is on its way arrives
# (or, past chat_users.SETTLE, counts as missed); it returns as soon as nothing is on its way
CHAT_KEYS = (
    "connections_dropped",
    "reconnects",
    "reconnect_p50_ms",
    "reconnect_p95_ms",
    "reconnect_all_back_ms",
    "reconnect_peak_per_s",
    "messages_sent",
    "messages_delivered",
    "messages_missed",
    "history_lost",
)
WORKER_VERBS = {
    "kill": "worker_kill",
    "stop": "worker_stop",
    "pause": "worker_pause",
    "resume": "worker_resume",
    "restart": "worker_restart",
    "remove": "worker_remove",
}
LAB_VERBS = ("add-worker", "deploy", "kill-store", "restart-store")
ON_OFF = {"on": True, "off": False}


def _number(text: str) -> float:
    return float(text)


def _whole(text: str) -> int:
    return int(text)


def _on_off(text: str) -> bool:
    if text not in ON_OFF:
        raise ValueError("on or off")
    return ON_OFF[text]


# set:KEY=VALUE, with the command line's names (`-`) for the engine's knobs (`_`).
SETTINGS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "sticky": ("sticky", _on_off),
    "auto-restart": ("auto_restart", _on_off),
    "handoff": ("handoff", _on_off),
    "rate": ("rate", _number),
    "users": ("users", _whole),
    "balancing": ("balancing", str),
    "store-latency-ms": ("store_latency_ms", _number),
    "store-jitter-ms": ("store_jitter_ms", _number),
    "work-ms": ("work_ms", _number),
    "worker-concurrency": ("worker_concurrency", _whole),
    "session-ttl": ("session_ttl", _number),
    "jitter": ("jitter", _on_off),
}
AT = re.compile(r"^(\d+(?:\.\d+)?):(.+)$")
WORKER = re.compile(r"^worker-([1-9][0-9]{0,8})$")
KILL_SHORT = re.compile(r"^(worker-\d+)@(\d+(?:\.\d+)?)$")


class ScenarioError(ValueError):
    """A scenario that cannot run as written; the text says what to write instead."""


@dataclass(frozen=True)
class Action:
    at: float
    verb: str  # kill, stop, ..., add-worker, deploy, kill-store, restart-store, set
    worker: str | None = None
    setting: tuple[str, Any] | None = None  # set: (engine knob, value)
    persistence: str | None = None  # restart-store:aof
    text: str = ""

    def __str__(self) -> str:
        return self.text


def action_parse(text: str) -> Action:
    """`SECONDS:ACTION` -> Action (ScenarioError with an example if it is not one)."""
    match = AT.match(text.strip())
    if match is None:
        raise ScenarioError(f"--at {text!r}: write it as SECONDS:ACTION, e.g. 4:kill:worker-1")
    at, rest = float(match.group(1)), match.group(2)
    verb, _, arg = rest.partition(":")
    if verb in WORKER_VERBS:
        if WORKER.match(arg) is None:
            raise ScenarioError(
                f"--at {text!r}: {verb} needs a worker, e.g. {at:g}:{verb}:worker-1"
            )
        return Action(at, verb, worker=arg, text=text)
    if verb == "restart-store" and arg in ("none", "aof"):
        return Action(at, verb, persistence=arg, text=text)
    if verb in LAB_VERBS:
        if arg:
            raise ScenarioError(f"--at {text!r}: {verb} takes nothing after it")
        return Action(at, verb, text=text)
    if verb == "set":
        key, eq, value = arg.partition("=")
        if key not in SETTINGS or not eq:
            raise ScenarioError(
                f"--at {text!r}: write set:KEY=VALUE with KEY one of {', '.join(SETTINGS)}"
            )
        knob, convert = SETTINGS[key]
        try:
            parsed = convert(value)
        except ValueError:
            raise ScenarioError(f"--at {text!r}: {value!r} is not a value for {key}") from None
        return Action(at, verb, setting=(knob, parsed), text=text)
    raise ScenarioError(
        f"--at {text!r}: unknown action {verb!r}; use one of "
        f"{', '.join([*WORKER_VERBS, *LAB_VERBS, 'set'])}"
    )


def kill_parse(text: str) -> Action:
    """The short form `worker-1@4` of `4:kill:worker-1`."""
    match = KILL_SHORT.match(text)
    if match is None:
        raise ScenarioError(f"--kill {text!r}: write it as worker-N@SECONDS, e.g. worker-1@4")
    return Action(float(match.group(2)), "kill", worker=match.group(1), text=text)


def actions_check(config: LabConfig, seconds: float, actions: list[Action]) -> list[Action]:
    """Sorted by time; ScenarioError for one that cannot happen in this lab."""
    if not 0 < seconds <= MAX_SECONDS:
        raise ScenarioError(f"--seconds must be more than 0 and at most {MAX_SECONDS:g}.")
    ordered = sorted(actions, key=lambda a: a.at)
    workers = config.workers
    for action in ordered:
        if action.at >= seconds:
            raise ScenarioError(f"{action}: {action.at:g} s is not before the end ({seconds:g} s).")
        if action.verb == "add-worker":
            workers += 1
        if action.worker is not None:
            number = int(action.worker.split("-")[1])
            if number > workers:
                raise ScenarioError(
                    f"{action}: the lab has worker-1 to worker-{workers} at that time."
                )
        if action.verb in ("kill-store", "restart-store") and not config.has_store:
            raise ScenarioError(
                f"{action}: this lab has no store (a stateful lab without handoff keeps "
                "sessions in its workers' memory)."
            )
        if action.setting is not None:
            knob = action.setting[0]
            if knob in (CHAT_ONLY if config.workload == "shop" else SHOP_ONLY):
                other = "chat" if config.workload == "shop" else "shop"
                raise ScenarioError(
                    f"{action}: {knob} is a {other} setting; this is a {config.workload} lab."
                )
            config.replace(**dict([action.setting]))  # LabError if out of range
    return ordered


def _operation(lab: Lab, action: Action) -> Callable[[], Awaitable[Any]]:
    if action.worker is not None:
        method = getattr(lab, WORKER_VERBS[action.verb])
        return lambda: method(action.worker)
    if action.setting is not None:
        knob, value = action.setting
        return lambda: lab.set(**{knob: value})
    return {
        "add-worker": lab.worker_add,
        "deploy": lab.deploy,
        "kill-store": lab.store_kill,
        "restart-store": lambda: lab.store_restart(action.persistence),
    }[action.verb]


async def scenario_steps(
    lab: Lab,
    actions: list[Action],
    seconds: float,
    on_step: Callable[[int], object] | None = None,
    hold: Callable[[int], Awaitable[object]] | None = None,
) -> float:
    """On a running lab: do each action at its time (in order; one still running delays
    the next), then wait until `seconds` since the lab started. on_step(i) is called once
    action i is done. `hold(i)`, when given, is awaited when action i is due and before it
    is done (a learner's button): the rest of the timeline, the end included, moves on by
    the time it took. Returns the seconds the lab ran for (`seconds` plus the holds).
    LabError names the action that failed."""
    shift = 0.0
    for index, action in enumerate(actions):
        await asyncio.sleep(max(0.0, action.at + shift - lab.now()))
        if hold is not None:
            held_at = lab.now()
            await hold(index)
            shift += lab.now() - held_at
        try:
            await _operation(lab, action)()
        except LabError as exc:
            raise LabError(f"{action} at {lab.now():.1f} s: {exc}") from exc
        if on_step is not None:
            on_step(index)
    await asyncio.sleep(max(0.0, seconds + shift - lab.now()))
    return seconds + shift


async def scenario_run(config: LabConfig, seconds: float, actions: list[Action]) -> dict[str, Any]:
    """Run the lab, do each action at its time, close it, and return the report.
    LabError if an action fails. A chat run ends with its users quiet for up to
    CHAT_SETTLE s, so that every message sent is counted as delivered or missed."""
    actions = actions_check(config, seconds, actions)
    lab = Lab(config)
    try:
        await lab.start()
        await scenario_steps(lab, actions, seconds)
        if lab.chat is not None:
            await lab.chat.settle(CHAT_SETTLE)
        lab.metrics.tick()
        snapshot = lab.snapshot()
        spawn_times = lab.spawn_times
    finally:
        await lab.close()
    return scenario_report(lab, config, seconds, snapshot, spawn_times)


def scenario_report(
    lab: Lab,
    config: LabConfig,
    seconds: float,
    snapshot: dict[str, Any],
    spawn_times: dict[str, list[float]],
    *,
    closed: bool = True,
) -> dict[str, Any]:
    """The run's figures. `closed`: the lab has been closed, so its processes are counted
    as orphans if any is left (`orphans_after`, None while it runs)."""
    orphans = find_orphans(lab.all_pids()) if closed else None
    disruptions = lab.disruption_log()
    kills = [d for d in disruptions if d["action"] == "killed"]
    stops = [d for d in disruptions if d["action"] == "stopped"]
    store = snapshot["store"]
    report: dict[str, Any] = {
        "mode": config.mode,
        "workload": config.workload,
        "workers": config.workers,
        "users": config.users,
        "rate": config.rate,
        "sticky": config.sticky,
        "balancing": config.balancing,
        "work_ms": config.work_ms,
        "worker_concurrency": config.worker_concurrency,
        "persistence": config.persistence,
        "store_latency_ms": config.store_latency_ms,
        "handoff": config.handoff,
        "seconds": seconds,
        **{k: v for k, v in snapshot["metrics"].items() if k != "rps"},
        "sessions_held_by_killed": sum(d["sessions_held"] for d in kills),
        "kills": [
            {
                "worker": d["worker"],
                "pid": d["pid"],
                "at": round(d["t"], 3),
                "sessions_held": d["sessions_held"],
                "sessions_held_source": d["sessions_source"],
                "requests_in_flight": d["inflight"],
                "connections_held": d["connections_held"],
                "marked_down_after_ms": d["marked_down_after_ms"],
            }
            for d in kills
        ],
        "stops": [
            {
                "worker": d["worker"],
                "at": round(d["t"], 3),
                "sessions_held": d["sessions_held"],
                "connections_held": d["connections_held"],
                "requests_in_flight": d["inflight"],
                "requests_failed": d["requests_failed"],
            }
            for d in stops
        ],
        "per_worker": {
            w["name"]: {
                "requests_ok": w["requests_ok"],
                "sessions": w["sessions"],
                "share": w["share"],
                "version": w["version"],
                "connections": w["connections"],
            }
            for w in snapshot["workers"]
        },
        "store_restarts": store["restarts"] if store else 0,
        "deploy_seconds": (
            round(sum(d["seconds"] for d in snapshot["deploys"]), 3)
            if snapshot["deploys"]
            else None
        ),
        "spawn_to_ready_ms": {name: times[0] for name, times in spawn_times.items() if times},
        "orphans_after": len(orphans) if orphans is not None else None,
        "events": [f"{e['t']:7.3f}s {e['text']}" for e in snapshot["events"]],
    }
    chat = snapshot["chat"]
    if chat is not None:
        report["rooms"] = config.rooms
        report["jitter"] = config.jitter
        report.update({key: chat[key] for key in CHAT_KEYS})
        report["messages_pending"] = chat["messages_pending"]
    if kills:
        first = kills[0]["t"]
        before = lab.metrics.latency_between(0.0, first)
        after = lab.metrics.latency_between(first)
        report["latency_before_kill"] = {k: before[k] for k in ("count", "p50_ms", "p99_ms")}
        report["latency_after_kill"] = {k: after[k] for k in ("count", "p50_ms", "p99_ms")}
    return report
