"""Kill-to-visible: from a kill sent over the lab's WebSocket to the update that shows the
worker down arriving back on that socket. The whole real path: daphne, the consumer, the
Channels layer on Redis, the lab host (`manage.py runlabs`), the engine, and back.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass, field

from .common import Browser, Report, Skip, Stack, Target, fmt, percentile, run_async
from .ws import WebSocket, WebSocketClosed

GOAL_P95_MS = 250.0
WORKERS = 3
# A round sends two commands (kill, restart); the consumer allows 10 a second (bursts of 20)
# and answers more with an error instead of forwarding them. Start a round at most every
# 0.5 s: well inside the limit, and the lab settles between rounds.
ROUND_EVERY = 0.5
# The worker cards of the lab page (templates/playground/lab.html, partial "topology").
CARD = re.compile(r'data-worker="(worker-\d+)"[^>]*?data-status="([a-z_]+)"')


@dataclass
class LabView:
    """What a learner's page shows of the workers, from the messages of the socket."""

    status: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    source: str = ""  # "html" (the cards the page shows) or "snapshot" (JSON only)

    def update(self, text: str) -> None:
        message = json.loads(text)
        kind = message.get("type")
        if kind == "snapshot":
            cards = CARD.findall(message.get("html") or "")
            if cards:
                self.status, self.source = dict(cards), "html"
            else:
                workers = (message.get("snapshot") or {}).get("workers", [])
                self.status = {w["name"]: w["status"] for w in workers}
                self.source = "snapshot"
        elif kind == "error":
            self.errors.append(str(message.get("message")))
        elif kind in ("closed", "refused"):
            raise WebSocketClosed(message.get("code"), message.get("message"))


async def _until(ws: WebSocket, view: LabView, worker: str, status: str, within: float) -> float:
    """Arrival time of the first message showing `worker` with `status`."""
    deadline = time.monotonic() + within
    try:
        while True:
            arrived, text = await ws.recv(max(0.0, deadline - time.monotonic()))
            view.update(text)
            if view.status.get(worker) == status:
                return arrived
    except TimeoutError:
        raise TimeoutError(
            f"{worker} not shown {status} within {within:g}s (shown: {view.status}; "
            f"last errors from the lab: {view.errors[-3:]})"
        ) from None


@dataclass
class Found:
    kills: list[float] = field(default_factory=list)  # ms
    restarts: list[float] = field(default_factory=list)  # ms
    missed: int = 0  # kills never shown down within 5 s


async def _measure(ws_url: str, origin: str, cookie: str, count: int) -> tuple[Found, LabView]:
    ws = await WebSocket.connect(ws_url, origin=origin, cookie=cookie)
    view = LabView()
    found = Found()
    try:
        for n in range(1, WORKERS + 1):
            await _until(ws, view, f"worker-{n}", "up", within=30)
        next_round = time.monotonic()
        for i in range(count):
            await asyncio.sleep(max(0.0, next_round - time.monotonic()))
            next_round = time.monotonic() + ROUND_EVERY
            worker = f"worker-{i % WORKERS + 1}"
            await _until(ws, view, worker, "up", within=15)
            sent = time.perf_counter()
            ws.send(json.dumps({"action": "kill", "worker": worker}))
            try:
                shown = await _until(ws, view, worker, "down", within=5)
                found.kills.append((shown - sent) * 1000)
            except TimeoutError:
                found.missed += 1
            sent = time.perf_counter()
            ws.send(json.dumps({"action": "restart", "worker": worker}))
            shown = await _until(ws, view, worker, "up", within=15)
            found.restarts.append((shown - sent) * 1000)
    finally:
        await ws.close()
    return found, view


def run(quick: bool) -> Report:
    report = Report("kill", "Kill over the WebSocket until the page shows the worker down")
    count = 10 if quick else 30
    with Stack("bench-kill-") as stack:
        redis = stack.redis()
        env = stack.site_env(redis.url)
        stack.labhost(env, redis.url)
        site = stack.daphne(env, "config.asgi:application", "site")

        learner = Browser(site.url)
        lab_id = learner.lab_start(
            mode="stateful", workers=str(WORKERS), users="12", rate="20", sticky="on"
        )
        ws_url = f"ws://127.0.0.1:{site.port}/ws/labs/{lab_id}/"
        try:
            found, view = run_async(
                _measure(ws_url, site.url, learner.cookie_header(), count), 60 + count * 10
            )
        except WebSocketClosed as exc:
            raise Skip(f"the lab socket {ws_url} closed: {exc}") from None

    kills, restarts = found.kills, found.restarts
    report.say(
        f"One stateful lab (3 workers, 12 users, 20 req/s) started through the form; {count} "
        f"kills over ws://…/ws/labs/<id>/, worker-1..3 in turn, each restarted before the "
        f"next, a round every {ROUND_EVERY:g}s at most; timed to the first message whose "
        f"{view.source} shows the worker down."
    )
    report.say()
    rows = [
        [
            "kill -> shown down",
            len(kills),
            percentile(kills, 50),
            percentile(kills, 95),
            max(kills, default=float("nan")),
        ],
        [
            "restart -> shown up",
            len(restarts),
            percentile(restarts, 50),
            percentile(restarts, 95),
            max(restarts, default=float("nan")),
        ],
    ]
    report.table(["what", "samples", "p50 ms", "p95 ms", "max ms"], rows)
    if found.missed or view.errors:
        report.say(
            f"kills never shown down within 5s: {found.missed}; "
            f"errors from the lab host: {len(view.errors)} {view.errors[:3]}"
        )
    p95 = percentile(kills, 95)
    report.targets.append(
        Target(
            "kill-to-visible p95",
            f"<= {GOAL_P95_MS:g} ms",
            f"{fmt(p95)} ms (p50 {fmt(percentile(kills, 50))} ms, {len(kills)} kills)",
            None if not kills else p95 <= GOAL_P95_MS and not found.missed,
        )
    )
    return report
