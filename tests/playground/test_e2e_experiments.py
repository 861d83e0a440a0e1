"""The experiment controls in real Chromium: the lab's store (kill, restart with a
persistence, latency), a deploy, worker capacity and handoff. Live daphne + lab host +
Chromium; the selectors are the page's contract (docs/playground-contract.md)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import axe_serious

from .conftest import HostProcess, alive, wait_until
from .test_e2e import metric, start_lab

pytestmark = pytest.mark.e2e


def store(page: Any) -> Any:
    return page.locator("[data-store]")


def test_the_store_is_a_node_the_learner_can_kill_and_restart(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    complaints = start_lab(page, live_server_url, "Stateless")
    page.wait_for_selector('[data-store][data-status="up"]', timeout=10_000)
    pid = int(store(page).get_attribute("data-pid"))
    assert pid in {p.pid for p in labhost_process.tree()}, "a real redis-server of the lab host"
    wait_until(lambda: metric(page, "requests_ok") > 20, 15)

    page.get_by_role("button", name="Kill store", exact=True).click()
    page.wait_for_selector('[data-store][data-status="down"]', timeout=5_000)
    assert wait_until(lambda: not alive(pid), 5)
    failed = metric(page, "requests_failed")
    assert wait_until(lambda: metric(page, "requests_failed") > failed, 10)  # stateless fails
    assert page.get_by_role("button", name="Kill store", exact=True).is_disabled()

    page.get_by_label("Store persistence").select_option("aof")
    page.get_by_role("button", name="Restart store", exact=True).click()
    page.wait_for_selector('[data-store][data-status="up"]', timeout=10_000)
    assert int(store(page).get_attribute("data-pid")) != pid
    assert "persistence aof" in store(page).inner_text()
    # No persistence before the restart: every session was gone, and the users noticed.
    assert wait_until(lambda: metric(page, "sessions_lost") > 0, 10)
    assert wait_until(lambda: metric(page, "store_restarts") == 1, 5)
    assert page.locator("#lab-change").inner_text().startswith("Since Restart store:")

    page.get_by_label("Store latency").fill("30")
    page.get_by_role("button", name="Apply latency").click()
    assert wait_until(
        lambda: store(page).locator('[data-field="latency_ms"]').inner_text() == "30", 5
    )
    assert complaints == []


def test_a_deploy_rolls_a_new_version_through_the_workers(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    start_lab(page, live_server_url, "Stateful")
    versions = page.locator('[data-worker] [data-field="version"]')
    assert versions.all_inner_texts() == ["1", "1", "1"]
    wait_until(lambda: metric(page, "requests_ok") > 20, 15)
    page.get_by_role("button", name="Deploy", exact=True).click()
    assert wait_until(lambda: versions.all_inner_texts() == ["2", "2", "2"], 20)
    assert wait_until(lambda: page.locator('[data-metric="deploy_seconds"]').inner_text() != "–", 5)
    assert float(page.locator('[data-metric="deploy_seconds"]').inner_text()) > 0
    # Stateful: drained one by one, and every session they held was lost all the same.
    assert wait_until(lambda: metric(page, "sessions_lost") > 0, 10)
    for n in (1, 2, 3):
        card = page.locator(f'[data-worker="worker-{n}"]')
        assert card.locator('[data-field="queue"]').inner_text().isdigit()
    assert page.locator("[data-store]").count() == 0  # a stateful lab has no store


def test_worker_capacity_applies_to_workers_started_after(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    start_lab(page, live_server_url, "Stateful")
    page.get_by_label("Requests a worker serves at once").fill("4")
    page.get_by_label("Work per request").fill("10")
    page.get_by_role("button", name="Apply to workers").click()
    log = page.locator("#lab-events")
    assert wait_until(lambda: "serve 4 request(s) at a time" in log.inner_text(), 5)
    page.get_by_role("button", name="Deploy", exact=True).click()
    versions = page.locator('[data-worker] [data-field="version"]')
    assert wait_until(lambda: versions.all_inner_texts() == ["2", "2", "2"], 20)


def test_start_form_offers_the_store_settings(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page.goto(f"{live_server_url}/playground/?mode=stateless")
    page.get_by_text("More settings").click()
    page.get_by_label("Store persistence").select_option("aof")
    page.get_by_label("Store latency").fill("10")
    page.get_by_role("button", name="Start lab").click()
    page.wait_for_url("**/playground/labs/*/")
    page.wait_for_selector('[data-store][data-status="up"]', timeout=15_000)
    text = store(page).inner_text()
    assert "persistence aof" in text and "+10 ms" in text


def test_a_chat_lab_shows_connections_and_the_reconnects_after_a_kill(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page.goto(f"{live_server_url}/playground/")
    page.get_by_text("More settings").click()
    page.get_by_label("Workload").select_option("chat")
    page.get_by_role("button", name="Start lab").click()
    page.wait_for_url("**/playground/labs/*/")
    page.wait_for_selector('[data-worker="worker-1"][data-status="up"]', timeout=20_000)
    held = page.locator('[data-worker="worker-1"] [data-field="connections"]')
    assert wait_until(lambda: int(held.inner_text()) > 0, 15)
    page.get_by_role("button", name="Kill worker-1", exact=True).click()
    assert wait_until(lambda: metric(page, "connections_dropped") > 0, 10)
    assert wait_until(lambda: metric(page, "reconnects") >= metric(page, "connections_dropped"), 15)
    toggle = page.get_by_role("button", name="Reconnect with jitter")
    assert toggle.get_attribute("aria-pressed") == "true"
    toggle.click()
    assert wait_until(lambda: toggle.get_attribute("aria-pressed") == "false", 5)


def test_a_learner_predicts_runs_a_lessons_experiment_and_reads_the_verdict(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page.goto(f"{live_server_url}/lessons/stateful-up-close/")
    card = page.locator('[data-experiment="kill-stateful-worker"]')
    card.scroll_into_view_if_needed()
    card.get_by_label("Your guess").fill("4")
    card.get_by_role("button", name="Run this experiment").click()
    page.wait_for_url("**/playground/labs/*/")
    panel = page.locator("#lab-experiment")
    # The panel fills with the first snapshot.
    assert wait_until(lambda: "Kill a worker that holds sessions" in panel.inner_text(), 15)
    assert page.locator("[data-prediction]").count() == 0  # no verdict before the run ends
    outcome = page.locator("[data-outcome]")
    outcome.wait_for(timeout=60_000)
    assert "sessions_lost" in outcome.inner_text()
    verdict = page.locator("[data-prediction]")
    assert verdict.get_attribute("data-prediction") in ("held", "missed")
    assert "You predicted: 4" in verdict.inner_text()
    assert panel.get_by_role("link", name="Back to the lesson").get_attribute("href") == (
        "/lessons/stateful-up-close/#experiment-kill-stateful-worker"
    )


def test_an_experiment_runs_from_the_keyboard_alone(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page.goto(f"{live_server_url}/lessons/the-tradeoff/")
    card = page.locator('[data-experiment="kill-stateless-worker"]')
    first = card.get_by_role("radio").first
    first.focus()
    page.keyboard.press("Space")  # choose "None of them"
    assert first.is_checked()
    page.keyboard.press("Tab")  # past the other choice (one tab stop per radio group)
    assert page.evaluate("document.activeElement.textContent") == "Run this experiment"
    page.keyboard.press("Enter")
    page.wait_for_url("**/playground/labs/*/")
    page.locator("[data-outcome]").wait_for(timeout=60_000)
    assert page.locator("[data-prediction]").get_attribute("data-prediction") == "held"


def test_a_finished_experiment_page_has_no_serious_accessibility_violations(
    audit_page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page = audit_page
    page.goto(f"{live_server_url}/lessons/externalize-state/")
    card = page.locator('[data-experiment="store-killed"]')
    card.get_by_role("radio").last.check()
    card.get_by_role("button", name="Run this experiment").click()
    page.wait_for_url("**/playground/labs/*/")
    page.locator("[data-prediction]").wait_for(timeout=60_000)
    page.wait_for_timeout(500)
    assert axe_serious(page) == []


def test_handoff_session_lifetime_and_store_jitter_are_set_from_the_page(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    # A stateful lab with a store: started from a lesson's handoff experiment's preset.
    page.goto(f"{live_server_url}/lessons/stateful-up-close/")
    card = page.locator('[data-experiment="deploy-with-handoff"]')
    card.get_by_role("button", name="Run this experiment").click()
    page.wait_for_url("**/playground/labs/*/")
    page.wait_for_selector('[data-store][data-status="up"]', timeout=15_000)
    # Commands wait for the lab to have started ("The lab is still starting" before).
    page.wait_for_selector('[data-worker="worker-3"][data-status="up"]', timeout=20_000)
    toggle = page.get_by_role("button", name="Hand off sessions on a stop")
    assert wait_until(lambda: toggle.get_attribute("aria-pressed") == "true", 10)
    toggle.click()
    assert wait_until(lambda: toggle.get_attribute("aria-pressed") == "false", 5)
    page.get_by_label("Session lifetime").fill("5")
    page.get_by_role("button", name="Apply to workers").click()
    log = page.locator("#lab-events")
    assert wait_until(lambda: "keep a session 5 s" in log.inner_text(), 5)
    page.get_by_label("Store jitter").fill("10")
    page.get_by_role("button", name="Apply latency").click()
    assert wait_until(lambda: "(±10)" in page.locator("[data-store]").inner_text(), 5)


def test_a_side_by_side_experiment_shows_both_labs_and_one_verdict(
    audit_page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page = audit_page
    page.goto(f"{live_server_url}/lessons/when-each-wins/")
    card = page.locator('[data-experiment="deploy-both"]')
    assert "two labs side by side" in card.inner_text()
    card.get_by_label("Stateful loses them, stateless none").check()
    card.get_by_role("button", name="Run this experiment").click()
    page.wait_for_url("**/playground/pairs/*/*/")
    table = page.locator(".pg-pair-table")
    for variant in ("stateful", "stateless"):
        assert table.locator(f'th[data-variant="{variant}"]').count() == 1
    # The numbers update in place while both labs run, next to each other.
    ok = page.locator('[data-pair-metric="requests_ok"]')
    assert wait_until(lambda: all(float(t) > 0 for t in ok.all_inner_texts()), 20)
    page.locator("[data-outcome]").wait_for(timeout=60_000)
    assert page.locator("[data-prediction]").get_attribute("data-prediction") == "held"
    assert "stateful.sessions_lost" in page.locator("[data-outcome]").inner_text()
    assert page.get_by_role("button", name="Kill worker-1 in both").is_enabled()
    assert axe_serious(page) == []


def test_a_step_that_is_the_learners_waits_for_their_button(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page.goto(f"{live_server_url}/lessons/stateful-up-close/")
    card = page.locator('[data-experiment="pause-sticky-worker"]')
    assert "you do it, with a button" in card.inner_text()
    card.get_by_role("radio").last.check()
    card.get_by_role("button", name="Run this experiment").click()
    page.wait_for_url("**/playground/labs/*/")
    button = page.get_by_role("button", name="Do it now: pause:worker-2")
    button.wait_for(timeout=20_000)
    assert page.locator("[data-outcome]").count() == 0  # the run waits for the learner
    button.click()
    page.wait_for_selector('[data-worker="worker-2"][data-status="paused"]', timeout=5_000)
    page.locator("[data-outcome]").wait_for(timeout=60_000)
    assert page.locator("[data-prediction]").get_attribute("data-prediction") == "held"
