"""Saved lab runs: saving a running lab's recording, the read-only permalink, the JSON and
CSV exports, deletion by owner and staff only, and expiry (410, pruneruns)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from playground import labclient, labprotocol
from playground.labhost.recording import Recording
from playground.models import LabRun
from playground.runs import MAX_RUN_BYTES, RunTooLarge, run_save
from tests.playground.labhost.test_recording import event, snapshot

from .conftest import HostProcess, wait_until
from .test_views import VALID

pytestmark = pytest.mark.django_db


def recorded(seconds: int = 5) -> dict[str, Any]:
    """A recording as the host makes it: 5 snapshots a second, a kill at 2.2 s."""
    recording = Recording()
    kill = event(1, 2.2)
    for tick in range(seconds * 5 + 1):
        t = tick / 5
        recording.offer(snapshot(t, events=[kill] if t >= 2.2 else []))
    return recording.describe()


def owned(client: Client, owner: str = "owner-token") -> str:
    session = client.session
    session["lab_owner"] = owner
    session.save()
    return owner


def saved(owner: str = "owner-token", **fields: Any) -> LabRun:
    run = run_save(recording=recorded(), owner=owner, lab_id="lab12345")
    if fields:
        LabRun.objects.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
    return run


def test_saving_a_running_lab_keeps_its_run_under_an_unguessable_permalink(
    client: Client, labhost_process: HostProcess
) -> None:
    started = client.post("/playground/labs/", VALID)
    lab_id = started["Location"].split("/")[-2]
    owner = client.session["lab_owner"]
    page = client.get(started["Location"]).content.decode()
    assert re.search(
        rf'<form method="post" action="/playground/labs/{lab_id}/runs/"[^>]*>\s*'
        r'<input type="hidden" name="csrfmiddlewaretoken"',
        page,
    )
    assert re.search(r'<button type="submit"[^>]*>Save this run</button>', page)
    wait_until(lambda: len(labclient.lab_recording(lab_id=lab_id, owner=owner)["frames"]) >= 3, 30)
    assert Client().post(f"/playground/labs/{lab_id}/runs/").status_code == 403  # a stranger
    assert client.post("/playground/labs/gone1234/runs/").status_code == 404
    assert LabRun.objects.count() == 0

    response = client.post(f"/playground/labs/{lab_id}/runs/")
    assert response.status_code == 302
    match = re.fullmatch(r"/playground/runs/([A-Za-z0-9_-]{12})/", response["Location"])
    assert match is not None
    run = LabRun.objects.get(slug=match.group(1))
    assert run.owner_digest == labprotocol.owner_digest(owner) != owner
    assert run.lab_id == lab_id and run.mode == "stateful" and len(run.frames) >= 3
    assert run.points and run.events
    days = (run.expires - run.created).days
    assert days == 30

    permalink = client.get(response["Location"])
    assert permalink.status_code == 200
    html = permalink.content.decode()
    assert "Delete this run" in html and "Save this run" not in html
    assert "<script>" not in html  # nothing inline (CSP)


def test_a_lab_that_has_ended_can_still_be_saved_for_a_while(
    client: Client, labhost_process: HostProcess
) -> None:
    first = client.post("/playground/labs/", VALID)["Location"].split("/")[-2]
    owner = client.session["lab_owner"]
    wait_until(lambda: len(labclient.lab_recording(lab_id=first, owner=owner)["frames"]) >= 2, 30)
    for _ in range(2):  # a third lab closes the session's oldest
        assert client.post("/playground/labs/", VALID).status_code == 302
    wait_until(lambda: labclient.lab_get(first) is None, 30)
    assert Client().post(f"/playground/labs/{first}/runs/").status_code == 403
    response = client.post(f"/playground/labs/{first}/runs/")
    assert response.status_code == 302
    run = LabRun.objects.get()
    assert run.lab_id == first and len(run.frames) >= 2


def test_the_permalink_is_read_only_for_anyone_else(client: Client) -> None:
    run = saved()
    html = client.get(f"/playground/runs/{run.slug}/").content.decode()
    assert 'type="range"' in html and re.search(
        r'<label for="run-scrub">Time in the run</label>', html
    )
    assert f'href="/playground/runs/{run.slug}.json" download>Download JSON</a>' in html
    assert f'href="/playground/runs/{run.slug}.csv" download>Download CSV</a>' in html
    assert "Delete this run" not in html and "Save this run" not in html
    # The last frame, rendered without JavaScript: its counters and workers.
    assert '<dd data-metric="requests_ok">50</dd>' in html
    assert 'data-worker="worker-2" data-status="down"' in html
    assert "worker-1 killed" in html  # the action, in the list of actions
    assert client.get("/playground/runs/no-such-run0/").status_code == 404


def test_the_json_export_is_the_recorded_run(client: Client) -> None:
    recording = recorded()
    run = run_save(recording=recording, owner="o", lab_id="lab12345")
    response = client.get(f"/playground/runs/{run.slug}.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert f'filename="run-{run.slug}.json"' in response["Content-Disposition"]
    data = response.json()
    assert data["frames"] == recording["frames"]
    assert data["points"] == recording["points"]
    assert data["events"] == recording["events"]
    assert data["config"] == recording["config"]
    assert data["marks"] == [{"t": 2.2, "label": "worker-1 killed"}]
    assert {"slug", "lab_id", "mode", "created", "expires", "truncated"} <= data.keys()


def test_the_csv_export_has_a_row_per_frame_and_a_column_per_figure(client: Client) -> None:
    recording = recorded()
    run = run_save(recording=recording, owner="o", lab_id="lab12345")
    response = client.get(f"/playground/runs/{run.slug}.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == len(recording["frames"]) == 6
    for row, frame in zip(rows, recording["frames"], strict=True):
        assert float(row["t"]) == frame["t"]
        for key in labprotocol.RUN_METRICS:
            assert float(row[key]) == frame["metrics"][key]
        assert row["store_status"] == "up"
        assert row["worker-1_status"] == "up" and row["worker-2_status"] == "down"
        assert float(row["worker-1_rps"]) == frame["workers"][0]["rps"]
        assert int(row["worker-1_sessions"]) == frame["workers"][0]["sessions"]


def test_only_the_owner_and_staff_may_delete_a_run(client: Client, django_user_model: Any) -> None:
    first, second = saved(owner="mine"), saved(owner="mine")
    stranger = Client()
    owned(stranger, "not-mine")
    response = stranger.post(f"/playground/runs/{first.slug}/delete/")
    assert response.status_code == 403
    assert LabRun.objects.filter(pk=first.pk).exists()

    owned(client, "mine")
    assert "Delete this run" in client.get(f"/playground/runs/{first.slug}/").content.decode()
    response = client.post(f"/playground/runs/{first.slug}/delete/")
    assert response.status_code == 302 and response["Location"] == "/playground/"
    assert not LabRun.objects.filter(pk=first.pk).exists()
    assert client.get(f"/playground/runs/{first.slug}/").status_code == 404

    staff = Client()
    staff.force_login(django_user_model.objects.create_user("teacher", is_staff=True))
    assert "Delete this run" in staff.get(f"/playground/runs/{second.slug}/").content.decode()
    assert staff.post(f"/playground/runs/{second.slug}/delete/").status_code == 302
    assert not LabRun.objects.exists()
    assert staff.get(f"/playground/runs/{second.slug}/delete/").status_code == 405


def test_an_expired_run_answers_410_and_is_pruned(client: Client, settings: Any) -> None:
    settings.PLAYGROUND_RUN_DAYS = 7
    kept = saved()
    assert (kept.expires - kept.created).days == 7
    expired = saved(expires=timezone.now() - timedelta(seconds=1))
    for suffix in ("/", ".json", ".csv"):
        response = client.get(f"/playground/runs/{expired.slug}{suffix}")
        assert response.status_code == 410
    assert (
        "This run has expired" in client.get(f"/playground/runs/{expired.slug}/").content.decode()
    )
    out = io.StringIO()
    call_command("pruneruns", stdout=out)
    assert out.getvalue().strip() == "1 expired run(s) deleted."
    assert list(LabRun.objects.all()) == [kept]
    # Saving prunes too.
    saved(expires=timezone.now() - timedelta(seconds=1))
    saved()
    assert LabRun.objects.count() == 2


def test_a_run_over_the_size_cap_is_refused() -> None:
    recording = recorded()
    recording["events"] = [{"t": 1, "text": "x" * 1000}] * (MAX_RUN_BYTES // 1000)
    with pytest.raises(RunTooLarge):
        run_save(recording=recording, owner="o", lab_id="lab12345")
    assert not LabRun.objects.exists()
