"""Run one lab scenario headless and report what was measured.

    python manage.py runscenario --mode stateful --workers 3 --users 12 --seconds 10 \\
        --kill worker-1@4 --json

A thin shell over playground.lab: parse, run, print. Sessions held by a killed worker are
read from its own /health just before the SIGKILL ("health_before_kill"); only if it
cannot answer (paused) the last health poll, at most one interval old, is used.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.embedded_redis import ensure_redis_url
from playground.lab import Lab, LabConfig, LabError
from playground.lab.process import find_orphans

KILL = re.compile(r"^(worker-\d+)@(\d+(?:\.\d+)?)$")
MAX_SECONDS = 600.0


@dataclass
class Kill:
    worker: str
    at: float


def parse_kill(value: str) -> Kill:
    match = KILL.match(value)
    if match is None:
        raise CommandError(f"--kill {value!r}: write it as worker-N@SECONDS, e.g. worker-1@4")
    return Kill(match.group(1), float(match.group(2)))


class Command(BaseCommand):
    help = "Run a lab for some seconds (optionally killing workers) and report the figures."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mode", choices=("stateful", "stateless"), default="stateful")
        parser.add_argument("--workers", type=int, default=3)
        parser.add_argument("--users", type=int, default=12)
        parser.add_argument("--seconds", type=float, default=10.0)
        parser.add_argument(
            "--rate", type=float, default=40.0, help="total requests per second of all users"
        )
        parser.add_argument(
            "--balancing", choices=("round_robin", "least_conn"), default="round_robin"
        )
        parser.add_argument(
            "--sticky", action="store_true", default=True, help="sticky sessions (the default)"
        )
        parser.add_argument("--no-sticky", action="store_false", dest="sticky")
        parser.add_argument("--auto-restart", action="store_true")
        parser.add_argument(
            "--kill",
            action="append",
            default=[],
            metavar="WORKER@SECONDS",
            help="SIGKILL a worker at that second, e.g. worker-1@4 (repeatable)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        seconds = options["seconds"]
        if not 0 < seconds <= MAX_SECONDS:
            raise CommandError(f"--seconds must be more than 0 and at most {MAX_SECONDS:g}.")
        redis_url = getattr(settings, "REDIS_URL", "") or ensure_redis_url()
        try:
            config = LabConfig(
                lab_id=f"scenario-{int(time.time())}",
                mode=options["mode"],
                workers=options["workers"],
                users=options["users"],
                rate=options["rate"],
                sticky=options["sticky"],
                balancing=options["balancing"],
                auto_restart=options["auto_restart"],
                redis_url=redis_url,
            )
            kills = sorted((parse_kill(k) for k in options["kill"]), key=lambda k: k.at)
            for kill in kills:
                if kill.at >= seconds:
                    raise CommandError(
                        f"--kill {kill.worker}@{kill.at:g} is not before the end ({seconds:g} s)."
                    )
                number = int(kill.worker.split("-")[1])
                if not 1 <= number <= options["workers"]:
                    raise CommandError(
                        f"--kill {kill.worker}: the lab has worker-1 to "
                        f"worker-{options['workers']}."
                    )
            report = asyncio.run(run_scenario(config, seconds, kills))
        except LabError as exc:
            raise CommandError(str(exc)) from exc
        except KeyboardInterrupt:
            # Ctrl-C: asyncio.run cancelled the scenario, whose `finally` closed the lab.
            raise CommandError(
                "Interrupted: the lab was closed and none of its processes is left.",
                returncode=130,
            ) from None
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self.stdout.write(render(report))


async def run_scenario(config: LabConfig, seconds: float, kills: list[Kill]) -> dict[str, Any]:
    lab = Lab(config)
    try:
        await lab.start()
        for kill in kills:
            await asyncio.sleep(max(0.0, kill.at - lab.now()))
            await lab.worker_kill(kill.worker)
        await asyncio.sleep(max(0.0, seconds - lab.now()))
        lab.metrics.tick()
        snapshot = lab.snapshot()
        spawn_times = lab.spawn_times
    finally:
        await lab.close()
    orphans = find_orphans(lab.all_pids())
    disruptions = lab.disruption_log()
    first_kill = disruptions[0]["t"] if disruptions else None
    report: dict[str, Any] = {
        "mode": config.mode,
        "workers": config.workers,
        "users": config.users,
        "rate": config.rate,
        "sticky": config.sticky,
        "balancing": config.balancing,
        "seconds": seconds,
        **{k: v for k, v in snapshot["metrics"].items() if k != "rps"},
        "sessions_held_by_killed": sum(d["sessions_held"] for d in disruptions),
        "kills": [
            {
                "worker": d["worker"],
                "pid": d["pid"],
                "at": round(d["t"], 3),
                "sessions_held": d["sessions_held"],
                "sessions_held_source": d["sessions_source"],
                "requests_in_flight": d["inflight"],
                "marked_down_after_ms": d["marked_down_after_ms"],
            }
            for d in disruptions
        ],
        "spawn_to_ready_ms": {name: times[0] for name, times in spawn_times.items() if times},
        "orphans_after": len(orphans),
        "events": [f"{e['t']:7.3f}s {e['text']}" for e in snapshot["events"]],
    }
    if first_kill is not None:
        before = lab.metrics.latency_between(0.0, first_kill)
        after = lab.metrics.latency_between(first_kill)
        report["latency_before_kill"] = {k: before[k] for k in ("count", "p50_ms", "p99_ms")}
        report["latency_after_kill"] = {k: after[k] for k in ("count", "p50_ms", "p99_ms")}
    return report


def render(report: dict[str, Any]) -> str:
    lines = [
        f"{report['mode']} lab: {report['workers']} workers, {report['users']} users, "
        f"{report['rate']:g} req/s, sticky {'on' if report['sticky'] else 'off'}, "
        f"{report['balancing']}, {report['seconds']:g} s",
        "",
        f"  requests ok       {report['requests_ok']}",
        f"  requests failed   {report['requests_failed']}",
        f"  sessions lost     {report['sessions_lost']}",
        f"  carts lost        {report['carts_lost']}",
        f"  re-logins         {report['relogins']}",
        f"  latency p50/p95/p99  {report['latency_p50_ms']:.1f} / "
        f"{report['latency_p95_ms']:.1f} / {report['latency_p99_ms']:.1f} ms",
    ]
    for kill in report["kills"]:
        down = kill["marked_down_after_ms"]
        lines.append(
            f"  killed {kill['worker']} at {kill['at']:.1f} s: it held {kill['sessions_held']} "
            f"sessions, {kill['requests_in_flight']} requests in flight; marked down "
            + (f"after {down:.0f} ms" if down is not None else "never")
        )
    if "latency_before_kill" in report:
        b, a = report["latency_before_kill"], report["latency_after_kill"]
        lines.append(
            f"  p50/p99 before the kill {b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms, "
            f"after {a['p50_ms']:.1f} / {a['p99_ms']:.1f} ms"
        )
    spawn = ", ".join(f"{n} {ms:.0f} ms" for n, ms in report["spawn_to_ready_ms"].items())
    lines += [
        f"  spawn-to-ready    {spawn}",
        f"  orphans after     {report['orphans_after']}",
        "",
        "Events:",
    ]
    lines += [f"  {line}" for line in report["events"]]
    return "\n".join(lines) + "\n"
