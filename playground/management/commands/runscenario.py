"""Run one lab scenario headless and report what was measured.

    python manage.py runscenario --mode stateful --workers 3 --users 12 --seconds 10 \\
        --at 4:kill:worker-1 --at 6:deploy --json

A thin shell over playground.lab.scenario: parse, run, print. Sessions held by a killed worker are
read from its own /health just before the SIGKILL ("health_before_kill"); only if it
cannot answer (paused) the last health poll, at most one interval old, is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from playground.lab import LabConfig, LabError
from playground.lab.config import MAX_ROOMS, MAX_STORE_LATENCY_MS, MAX_WORK_MS
from playground.lab.scenario import (
    LAB_VERBS,
    SETTINGS,
    WORKER_VERBS,
    ScenarioError,
    action_parse,
    kill_parse,
    scenario_run,
)

EPILOG = f"""
actions (--at SECONDS:ACTION, repeatable, done in time order):
  {", ".join(f"{verb}:worker-N" for verb in WORKER_VERBS)}
  {", ".join(LAB_VERBS)}, restart-store:none|aof
  set:KEY=VALUE with KEY one of {", ".join(SETTINGS)} (sticky=on|off)

examples:
  # a kill under load fails the requests in flight; a graceful stop fails none
  manage.py runscenario --workers 3 --users 50 --rate 200 --seconds 8 \\
      --at 3:kill:worker-1 --at 5:stop:worker-2 --json
  # a deploy: stateful loses every session, stateless none
  manage.py runscenario --mode stateful --seconds 10 --at 3:deploy --json
  # the store restarts empty without persistence; with AOF sessions survive
  manage.py runscenario --mode stateless --persistence aof --seconds 8 --at 4:restart-store
  # stateless latency follows the store's injected delay
  manage.py runscenario --mode stateless --store-latency-ms 20 --seconds 6
  # chat: a kill drops its connections; without jitter they all come back at once
  manage.py runscenario --workload chat --users 50 --no-jitter --at 3:kill:worker-1 --json
"""


class Command(BaseCommand):
    help = (
        "Run a lab for some seconds, do actions at set times (kills, stops, deploys, the "
        "store, settings) and report what was measured, as text or JSON."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = EPILOG
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        lab = parser.add_argument_group("the lab")
        lab.add_argument(
            "--mode",
            choices=("stateful", "stateless"),
            default="stateful",
            help="stateful: sessions in each worker's memory; stateless: in the lab's store",
        )
        lab.add_argument(
            "--workload",
            choices=("shop", "chat"),
            default="shop",
            help="shop: HTTP requests with sessions and carts; chat: WebSockets",
        )
        lab.add_argument("--workers", type=int, default=3, help="1 to 6, e.g. --workers 3")
        lab.add_argument("--users", type=int, default=12, help="virtual users, 1 to 50")
        lab.add_argument("--seconds", type=float, default=10.0, help="how long the run lasts")
        lab.add_argument(
            "--rate",
            type=float,
            default=40.0,
            help="total requests (chat: messages) per second of all users (1 to 200), "
            "e.g. --rate 200",
        )
        lab.add_argument(
            "--balancing", choices=("round_robin", "least_conn"), default="round_robin"
        )
        lab.add_argument(
            "--sticky", action="store_true", default=True, help="sticky sessions (the default)"
        )
        lab.add_argument(
            "--no-sticky",
            action="store_false",
            dest="sticky",
            help="any request may land on any worker",
        )
        lab.add_argument(
            "--auto-restart", action="store_true", help="restart crashed workers (100 ms, doubling)"
        )
        lab.add_argument(
            "--work-ms",
            type=float,
            default=None,
            help=f"each request's work in a worker, 0 to {MAX_WORK_MS:g} ms (a wait, "
            "like a database call; default 40), e.g. --work-ms 40",
        )
        lab.add_argument(
            "--worker-concurrency",
            type=int,
            default=None,
            help="requests a worker serves at once; the rest queue (default 1), e.g. 4",
        )
        lab.add_argument(
            "--session-ttl",
            type=float,
            default=None,
            help="seconds a user keeps a session before a new visitor replaces it "
            "(default 1800), e.g. --session-ttl 5",
        )
        store = parser.add_argument_group("the store (stateless labs, or --handoff)")
        store.add_argument(
            "--persistence",
            choices=("none", "aof"),
            default="none",
            help="none: a restart starts empty; aof: appendonly, fsync everysec",
        )
        store.add_argument(
            "--store-latency-ms",
            type=float,
            default=0.0,
            help=f"added to every store round trip, 0 to {MAX_STORE_LATENCY_MS:g}, e.g. 20",
        )
        store.add_argument(
            "--store-jitter-ms",
            type=float,
            default=0.0,
            help="plus up to this much, at random, e.g. 5",
        )
        store.add_argument(
            "--handoff",
            action="store_true",
            help="stateful: workers write their sessions to the store before a graceful stop",
        )
        chat = parser.add_argument_group("chat (--workload chat)")
        chat.add_argument(
            "--rooms", type=int, default=None, help=f"chat rooms, 1 to {MAX_ROOMS} (default 3)"
        )
        chat.add_argument(
            "--jitter",
            action="store_true",
            default=True,
            help="reconnect with exponential backoff and full jitter (default)",
        )
        chat.add_argument(
            "--no-jitter",
            action="store_false",
            dest="jitter",
            help="reconnect at once: the thundering herd",
        )
        run = parser.add_argument_group("what happens")
        run.add_argument(
            "--at",
            action="append",
            default=[],
            metavar="SECONDS:ACTION",
            help="do ACTION at that second, e.g. --at 4:kill:worker-1 (repeatable; see below)",
        )
        run.add_argument(
            "--kill",
            action="append",
            default=[],
            metavar="WORKER@SECONDS",
            help="short for --at SECONDS:kill:WORKER, e.g. --kill worker-1@4",
        )
        run.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        optional = {
            "work_ms": options["work_ms"],
            "worker_concurrency": options["worker_concurrency"],
            "session_ttl": options["session_ttl"],
            "rooms": options["rooms"],
        }
        try:
            config = LabConfig(
                lab_id=f"scenario-{int(time.time())}",
                mode=options["mode"],
                workload=options["workload"],
                workers=options["workers"],
                users=options["users"],
                rate=options["rate"],
                sticky=options["sticky"],
                balancing=options["balancing"],
                auto_restart=options["auto_restart"],
                persistence=options["persistence"],
                store_latency_ms=options["store_latency_ms"],
                store_jitter_ms=options["store_jitter_ms"],
                handoff=options["handoff"],
                jitter=options["jitter"],
                **{k: v for k, v in optional.items() if v is not None},
            )
            actions = [kill_parse(k) for k in options["kill"]]
            actions += [action_parse(a) for a in options["at"]]
            report = asyncio.run(scenario_run(config, options["seconds"], actions))
        except (LabError, ScenarioError) as exc:
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


def render(report: dict[str, Any]) -> str:
    chat = "messages_sent" in report
    if chat:
        lines = [
            f"{report['mode']} chat lab: {report['workers']} workers, {report['users']} users "
            f"in {report['rooms']} rooms, {report['rate']:g} messages/s, jitter "
            f"{'on' if report['jitter'] else 'off'}, {report['balancing']}, "
            f"{report['seconds']:g} s",
            "",
            f"  messages sent     {report['messages_sent']}",
            f"  delivered         {report['messages_delivered']}",
            f"  missed            {report['messages_missed']}",
            f"  history lost      {report['history_lost']}",
            f"  dropped           {report['connections_dropped']} connections, "
            f"{report['reconnects']} reconnects",
            f"  reconnect p50/p95 {_ms(report['reconnect_p50_ms'])} / "
            f"{_ms(report['reconnect_p95_ms'])}, all back after "
            f"{_ms(report['reconnect_all_back_ms'])}, peak {report['reconnect_peak_per_s']:g}/s",
        ]
    else:
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
        held = (
            f"{kill['connections_held']} connections"
            if chat
            else f"{kill['sessions_held']} sessions, {kill['requests_in_flight']} requests in "
            "flight"
        )
        lines.append(
            f"  killed {kill['worker']} at {kill['at']:.1f} s: it held {held}; marked down "
            + (f"after {down:.0f} ms" if down is not None else "never")
        )
    for stop in report["stops"]:
        lines.append(
            f"  stopped {stop['worker']} at {stop['at']:.1f} s: {stop['requests_in_flight']} "
            f"requests in flight, {stop['requests_failed']} failed"
        )
    if report["deploy_seconds"] is not None:
        lines.append(f"  deploy took       {report['deploy_seconds']:.1f} s")
    if report["store_restarts"]:
        lines.append(f"  store restarts    {report['store_restarts']}")
    shares = ", ".join(
        f"{name} {w['connections']} connections"
        if chat
        else f"{name} {w['share'] * 100:.0f}% ({w['sessions']} sessions)"
        for name, w in report["per_worker"].items()
    )
    lines.append(f"  per worker        {shares}")
    if "latency_before_kill" in report and not chat:
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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
