"""A side-by-side experiment through the pages, on the real `runlabs` host: one start makes
two labs, the pair's page shows both and the verdict, and one button acts on both."""

from __future__ import annotations

import re
import time

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from course.models import ExperimentRecord
from playground import labclient
from playground.views_pair import _peek_both

from .conftest import HostProcess, wait_until

pytestmark = pytest.mark.django_db  # the start and the pair's verdict are recorded

LESSON = "/lessons/when-each-wins/"
VALID = {"mode": "stateful", "workers": "1", "users": "3", "rate": "10", "sticky": "on"}
DEPLOY_BOTH = {**VALID, "experiment": "deploy-both", "prediction": "2"}


def start_pair(client: Client) -> tuple[str, str, str]:
    response = client.post("/playground/labs/", DEPLOY_BOTH)
    assert response.status_code == 302, response.content.decode()[:500]
    match = re.fullmatch(r"/playground/pairs/([a-z0-9]+)/([a-z0-9]+)/", response["Location"])
    assert match is not None, response["Location"]
    return response["Location"], match.group(1), match.group(2)


def test_a_side_by_side_experiment_runs_two_labs_and_judges_them_together(
    client: Client, labhost_process: HostProcess
) -> None:
    page_url, first, second = start_pair(client)
    assert {first, second} <= set(labhost_process.lab_ids())
    assert client.session["labs"] == [second, first]
    page = client.get(page_url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-variant="stateful"' in html and 'data-variant="stateless"' in html
    assert re.search(r"<button[^>]*>\s*Kill worker-1 in both\s*</button>", html)
    assert f'href="{LESSON}#experiment-deploy-both"' in html
    records = [labclient.lab_get(first), labclient.lab_get(second)]
    assert [r.mode for r in records if r] == ["stateful", "stateless"]

    deadline, live = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        response = client.get(f"{page_url}live/")
        assert response.status_code == 200
        live = response.content.decode()
        if "data-outcome" in live:
            break
        time.sleep(1)
    assert "data-outcome" in live, live[-800:]
    outcome = dict(re.findall(r"<dt>([a-z_.0-9]+)</dt><dd>([^<]+)</dd>", live))
    assert float(outcome["stateful.sessions_lost"]) >= 8
    assert float(outcome["stateless.sessions_lost"]) == 0
    assert 'data-prediction="held"' in live  # "stateful loses them, stateless none"
    assert "Draining finishes requests" in live
    # One anonymous record for the pair (its first lab's), judged once on the pair's page.
    record = ExperimentRecord.objects.get()
    assert (record.lab_id, record.experiment_slug, record.prediction) == (first, "deploy-both", "2")
    assert record.held is True and record.figures is not None
    assert record.figures["stateful.sessions_lost"] >= 8


def test_one_button_acts_on_both_labs_and_strangers_see_nothing(
    client: Client, labhost_process: HostProcess
) -> None:
    page_url, first, second = start_pair(client)
    records = [labclient.lab_get(first), labclient.lab_get(second)]
    owner = client.session["lab_owner"]

    def both_have(kind: str) -> list[bool]:
        snapshots = async_to_sync(_peek_both)(records, owner)
        return [any(e.get("kind") == kind for e in (s or {}).get("events", [])) for s in snapshots]

    # The experiment deploys both labs at 2 s; a kill during that deploy would be refused
    # (its worker is busy), so the button is pressed once both deploys are over.
    wait_until(lambda: all(both_have("deploy.finished")), 30)
    said = client.post(f"{page_url}both/", {"both": "kill"}, headers={"HX-Request": "true"})
    assert "Sent: Kill worker-1 in both." in said.content.decode()
    wait_until(lambda: all(both_have("worker.killed")), 15)
    refused = client.post(f"{page_url}both/", {"both": "reset"}, headers={"HX-Request": "true"})
    assert "not one this pair offers" in refused.content.decode()

    stranger = Client()
    assert stranger.get(page_url).status_code == 404
    assert stranger.get(f"{page_url}live/").status_code == 404
    assert stranger.post(f"{page_url}both/", {"both": "kill"}).status_code == 404
