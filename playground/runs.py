"""Saved lab runs: save a recording, read it back as JSON or CSV, prune the expired ones.

The views stay thin: these are the services they call. A recording is the lab host's
(playground.labhost.recording): frames (one a second at most), chart points and events.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from playground import labprotocol
from playground.models import LabRun

# A saved run's JSON (frames, points, events) may be at most this large: the host keeps
# about 2 MB of a 30-minute run; a reply beyond this is not from a well-behaved host.
MAX_RUN_BYTES = 4_000_000
# The events the charts mark: the learner's actions (as static/js/lab.js marks them live).
ACTION_KINDS = frozenset(
    {
        "worker.killed",
        "worker.stopping",
        "worker.paused",
        "worker.resumed",
        "worker.restarted",
        "worker.added",
        "worker.removed",
        "lab.reset",
        "users.rate",
        "users.count",
        "deploy.started",
        "store.killed",
        "store.restarted",
        "store.latency",
        "workers.capacity",
        "users.session_ttl",
    }
)


class RunTooLarge(ValueError):
    """The recording is over MAX_RUN_BYTES. The message is for the learner."""


def run_days() -> int:
    return int(getattr(settings, "PLAYGROUND_RUN_DAYS", 30))


def run_save(*, recording: dict[str, Any], owner: str, lab_id: str) -> LabRun:
    """Keep `recording` as a run of `owner`'s for PLAYGROUND_RUN_DAYS; prune expired runs."""
    parts = {key: list(recording.get(key) or []) for key in ("frames", "points", "events")}
    if len(json.dumps(parts)) > MAX_RUN_BYTES:
        raise RunTooLarge("This run is too large to keep.")
    now = timezone.now()
    run_prune(now=now)
    config = dict(recording.get("config") or {})
    return LabRun.objects.create(
        owner_digest=labprotocol.owner_digest(owner),
        lab_id=lab_id,
        mode=str(config.get("mode") or ""),
        config=config,
        truncated=bool(recording.get("truncated")),
        created=now,
        expires=now + timedelta(days=run_days()),
        **parts,
    )


def run_prune(*, now: datetime) -> int:
    """Delete the runs expired by `now`; returns how many."""
    deleted, _ = LabRun.objects.filter(expires__lte=now).delete()
    return deleted


def run_owned_by(run: LabRun, owner: str | None) -> bool:
    return bool(owner) and labprotocol.owner_digest(str(owner)) == run.owner_digest


def run_marks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The learner's actions as chart marks: {"t", "label"}; "worker-1 killed (SIGKILL,
    pid 1234)." reads as "worker-1 killed"."""
    return [
        {"t": e["t"], "label": re.split(r"[(:;.]", str(e.get("text", "")))[0].strip()}
        for e in events
        if e.get("kind") in ACTION_KINDS
    ]


def run_export(run: LabRun) -> dict[str, Any]:
    """The run as the JSON export (docs/playground-contract.md, "Saved runs")."""
    return {
        "slug": run.slug,
        "lab_id": run.lab_id,
        "mode": run.mode,
        "config": run.config,
        "created": run.created.isoformat(),
        "expires": run.expires.isoformat(),
        "truncated": run.truncated,
        "frames": run.frames,
        "points": run.points,
        "events": run.events,
        "marks": run_marks(run.events),
    }


def run_csv(run: LabRun) -> str:
    """One row per frame: its time, the counters, the store, and each worker's figures."""
    names: list[str] = []
    for frame in run.frames:
        for worker in frame["workers"]:
            if worker["name"] not in names:
                names.append(worker["name"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "t",
            *labprotocol.RUN_METRICS,
            "store_status",
            *(f"{name}_{field}" for name in names for field in ("status", "sessions", "rps")),
        ]
    )
    for frame in run.frames:
        workers = {w["name"]: w for w in frame["workers"]}
        store = frame.get("store")
        row: list[Any] = [
            frame["t"],
            *(frame["metrics"].get(key, "") for key in labprotocol.RUN_METRICS),
        ]
        row.append(store["status"] if store else "")
        for name in names:
            worker = workers.get(name)
            row.extend(
                [worker["status"], worker["sessions"], worker["rps"]] if worker else ["", "", ""]
            )
        writer.writerow(row)
    return out.getvalue()
