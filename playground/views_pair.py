"""A lesson's side-by-side experiment: two labs (one per variant) under the same traffic,
their numbers next to each other, one button acting on both, and the verdict of the pair.

Thin, like the other playground views: each lab runs in its lab host with its own steps and
measures its own figures (playground.labhost.experiment); this page asks both hosts for
their latest snapshot once a second (htmx polling: no socket to keep) and judges the pair
with the course's experiment (course.experiment.Experiment.verdict). The learner's
prediction waits in their session, next to the pair's lab ids.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import MutableMapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from course.experiment import Experiment
from course.records import experiment_pair_outcome_record
from course.snapshot import course_snapshot
from playground import labclient as client
from playground import labprotocol
from playground.consumers import MESSAGE_BURST, MESSAGES_PER_SECOND
from playground.labclient import LabHostUnavailable, LabRecord

PAIRS_KEPT = 2  # a learner runs two labs at most: one pair
# What the pair's table shows for each lab, live (the lab page's counter names).
LIVE_FIGURES = (
    ("requests_ok", "Requests OK"),
    ("requests_failed", "Requests failed"),
    ("sessions_lost", "Sessions lost"),
    ("carts_lost", "Carts lost"),
    ("rps", "Throughput (req/s)"),
    ("latency_p50_ms", "Latency p50 (ms)"),
    ("latency_p99_ms", "Latency p99 (ms)"),
)
# The actions one button applies to both labs (the `--at` names of the steps, as commands).
BOTH = {
    "kill": ("Kill worker-1 in both", {"action": "kill", "worker": "worker-1"}),
    "stop": ("Stop worker-1 in both", {"action": "stop", "worker": "worker-1"}),
    "deploy": ("Deploy both", {"action": "deploy"}),
    "restart_store": ("Restart the store in both", {"action": "restart_store"}),
}


def pair_remember(
    session: MutableMapping[str, Any], *, first: str, second: str, slug: str, answer: str | None
) -> None:
    """Keep which experiment a pair runs and what the learner predicted, in their session."""
    pairs = dict(session.get("pairs") or {})
    pairs[f"{first}-{second}"] = {"slug": slug, "answer": answer or ""}
    session["pairs"] = dict(list(pairs.items())[-PAIRS_KEPT:])


@require_safe
def pair_detail(request: HttpRequest, first: str, second: str) -> HttpResponse:
    context = _context(request, first, second)
    if isinstance(context, HttpResponse):
        return context
    return render(request, "playground/pair.html", context)


@require_safe
def pair_live(request: HttpRequest, first: str, second: str) -> HttpResponse:
    """The pair's numbers, polled once a second by the page (286: both ended, stop)."""
    context = _context(request, first, second)
    if isinstance(context, HttpResponse):
        return context
    verdict = context["verdict"]
    if verdict is not None:
        experiment_pair_outcome_record(
            session=request.session, lab_id=first, held=verdict.held, figures=dict(verdict.outcome)
        )
    status = 286 if all(v["ended"] for v in context["variants"]) else 200
    return render(request, "playground/pair.html#live", context, status=status)


@require_POST
def pair_command(request: HttpRequest, first: str, second: str) -> HttpResponse:
    """One button, both labs: the same command to each, at once."""
    found = _pair(request, first, second)
    if isinstance(found, HttpResponse):
        return found
    _, exp, _, records = found
    owner = str(request.session.get("lab_owner"))
    key = str(request.POST.get("both", ""))
    chosen = BOTH.get(key)
    if chosen is None or key not in _both_actions(exp):
        said = "That action is not one this pair offers."
    elif not client.command_allow(
        key=labprotocol.session_commands_key(owner),
        now=time.time(),
        rate=MESSAGES_PER_SECOND,
        burst=MESSAGE_BURST,
    ):
        said = f"Too many messages: at most {MESSAGES_PER_SECOND} a second from this browser."
    else:
        command = labprotocol.command_parse(json.dumps(chosen[1]))
        async_to_sync(_send_both)(records, owner, command)
        said = f"Sent: {chosen[0]}."
    if not request.headers.get("HX-Request"):
        return redirect("playground:pair_detail", first=first, second=second)
    return render(request, "playground/pair.html#said", {"said": said})


def _context(request: HttpRequest, first: str, second: str) -> dict[str, Any] | HttpResponse:
    """What the pair's page and its polled part show, or the page that says why not."""
    found = _pair(request, first, second)
    if isinstance(found, HttpResponse):
        return found
    lesson_slug, exp, answer, records = found
    return {
        "exp": exp,
        "exp_lesson": lesson_slug,
        "first": first,
        "second": second,
        "both": [(key, BOTH[key][0]) for key in _both_actions(exp)],
        **_live(exp, answer, records, str(request.session.get("lab_owner"))),
    }


def _pair(
    request: HttpRequest, first: str, second: str
) -> tuple[str, Experiment, str, list[LabRecord | None]] | HttpResponse:
    """The pair's lesson and experiment, the learner's answer and both labs' records, or a
    page that says why not (not this session's pair, or the experiment left the course)."""
    pair = (request.session.get("pairs") or {}).get(f"{first}-{second}")
    owner = request.session.get("lab_owner")
    if not isinstance(pair, dict):
        reason = "This side-by-side run is not one of this browser session's."
        context = {"reason": reason, "lab_id": f"{first}, {second}"}
        return render(request, "playground/unavailable.html", context, status=404)
    found = course_snapshot().experiment_get(slug=str(pair.get("slug")))
    if found is None:
        reason = "This experiment is no longer in the course."
        context = {"reason": reason, "lab_id": f"{first}, {second}"}
        return render(request, "playground/unavailable.html", context, status=404)
    records = [client.lab_get(first), client.lab_get(second)]
    if any(r is not None and not r.owned_by(owner) for r in records):
        reason = "This lab belongs to another browser session. Start one of your own."
        context = {"reason": reason, "lab_id": f"{first}, {second}"}
        return render(request, "playground/unavailable.html", context, status=403)
    lesson, exp = found
    return lesson.slug, exp, str(pair.get("answer") or ""), records


def _both_actions(exp: Experiment) -> list[str]:
    """The buttons that act on both labs (keys of BOTH): a worker's kill and stop, a
    deploy; the store's restart when both labs have a store."""
    actions = ["kill", "stop", "deploy"]
    configs = exp.configs().values()
    if all(c.get("mode") == "stateless" or c.get("handoff") for c in configs):
        actions.append("restart_store")
    return actions


def _live(
    exp: Experiment, answer: str, records: list[LabRecord | None], owner: str
) -> dict[str, Any]:
    names = list(exp.configs())
    try:
        snapshots = async_to_sync(_peek_both)(records, owner)
    except LabHostUnavailable:
        snapshots = [None, None]
    variants = []
    for name, record, snapshot in zip(names, records, snapshots, strict=True):
        experiment = (snapshot or {}).get("experiment") or {}
        metrics = (snapshot or {}).get("metrics") or {}
        workers = (snapshot or {}).get("workers") or []
        variants.append(
            {
                "name": name,
                "lab_id": record.lab_id if record else "",
                "url": reverse("playground:lab_detail", args=[record.lab_id]) if record else "",
                "ended": snapshot is None,
                "mode": record.mode if record else "",
                "workers_up": sum(1 for w in workers if w.get("status") == "up"),
                "workers": len(workers),
                "state": experiment.get("state", "starting"),
                "steps_done": sum(1 for s in experiment.get("steps", []) if s.get("done")),
                "metrics": metrics,
                "measured": {o["figure"]: o["value"] for o in experiment.get("outcome", [])},
            }
        )
    rows = [
        {"key": key, "label": label, "values": [v["metrics"].get(key) for v in variants]}
        for key, label in LIVE_FIGURES
    ]
    done = all(v["state"] == "done" for v in variants)
    verdict = (
        exp.verdict(measured={v["name"]: v["measured"] for v in variants}, answer=answer)
        if done
        else None
    )
    return {"variants": variants, "rows": rows, "verdict": verdict, "done": done}


async def _peek_both(records: list[LabRecord | None], owner: str) -> list[dict[str, Any] | None]:
    async def peek(record: LabRecord | None) -> dict[str, Any] | None:
        if record is None:
            return None
        reply = await client.ahost_request(
            record.host, "lab.peek", lab_id=record.lab_id, owner=owner
        )
        snapshot = reply.get("snapshot") if reply.get("type") == "lab.peeked" else None
        return snapshot if isinstance(snapshot, dict) else None

    return list(await asyncio.gather(*(peek(r) for r in records)))


async def _send_both(records: list[LabRecord | None], owner: str, command: dict[str, Any]) -> None:
    layer = get_channel_layer()
    assert layer is not None
    for record in records:
        if record is not None:
            await layer.send(
                record.host,
                {"type": "lab.command", "lab_id": record.lab_id, "owner": owner, **command},
            )
