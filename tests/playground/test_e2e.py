"""The playground in real Chromium: start a lab, kill a real worker, read what it cost.

Live daphne server + `manage.py runlabs` subprocess + Chromium, all on the test settings.
The selectors are the page's contract (docs/playground-contract.md).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import axe_serious

from .conftest import HostProcess, alive, wait_until

pytestmark = pytest.mark.e2e


def start_lab(page: Any, live_server_url: str, mode: str) -> list[str]:
    """Start a lab from the form; wait until its workers are up. Returns CSP complaints."""
    complaints: list[str] = []
    page.on(
        "console",
        lambda m: complaints.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{live_server_url}/playground/")
    page.get_by_label(mode, exact=True).check()
    page.get_by_label("Workers").fill("3")
    page.get_by_role("button", name="Start lab").click()
    page.wait_for_url("**/playground/labs/*/")
    for n in (1, 2, 3):
        page.wait_for_selector(f'[data-worker="worker-{n}"][data-status="up"]', timeout=20_000)
    return complaints


def metric(page: Any, name: str) -> float:
    return float(page.locator(f'[data-metric="{name}"]').inner_text())


def worker_pid(page: Any, name: str) -> int:
    return int(page.locator(f'[data-worker="{name}"]').get_attribute("data-pid"))


def kill_worker_1(page: Any, host: HostProcess) -> int:
    """Wait until the users are busy, kill worker-1 from the page; return its old pid."""
    wait_until(lambda: metric(page, "requests_ok") > 30, 15)
    pid = worker_pid(page, "worker-1")
    assert pid in {p.pid for p in host.tree()}, "the page shows a real process of the lab host"
    page.get_by_role("button", name="Kill worker-1", exact=True).click()
    page.wait_for_selector('[data-worker="worker-1"][data-status="down"]', timeout=5_000)
    assert wait_until(lambda: not alive(pid), 5)
    return pid


def test_stateful_kill_loses_the_sessions_it_held(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    complaints = start_lab(page, live_server_url, "Stateful")
    sessions = page.locator('[data-worker="worker-1"] [data-field="sessions"]')
    wait_until(lambda: int(sessions.inner_text()) > 0, 15)  # it holds some to lose
    assert metric(page, "sessions_lost") == 0
    kill_worker_1(page, labhost_process)
    wait_until(lambda: metric(page, "sessions_lost") > 0, 15)
    wait_until(lambda: metric(page, "relogins") > 0, 15)
    assert page.locator("#lab-conn").inner_text() == "Live"
    assert complaints == []  # the WebSocket and every script pass the CSP


def test_stateless_kill_loses_no_session(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    complaints = start_lab(page, live_server_url, "Stateless")
    kill_worker_1(page, labhost_process)
    ok_at_kill = metric(page, "requests_ok")
    # Long enough for every user to come back several times, including those whose last
    # request went to worker-1: in stateless mode they find their session in Redis.
    time.sleep(6)
    assert metric(page, "requests_ok") > ok_at_kill + 20
    assert metric(page, "sessions_lost") == 0
    assert metric(page, "carts_lost") == 0
    assert complaints == []


def test_workers_come_and_go_and_strangers_stay_out(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    start_lab(page, live_server_url, "Stateful")
    other = page.context.browser.new_context()
    try:
        assert other.new_page().goto(page.url).status == 403
    finally:
        other.close()
    pid = worker_pid(page, "worker-1")
    page.get_by_role("button", name="Remove worker-1", exact=True).click()
    page.wait_for_selector('[data-worker="worker-1"]', state="detached", timeout=10_000)
    assert wait_until(lambda: not alive(pid), 5)
    page.get_by_role("button", name="Add worker", exact=True).click()
    page.wait_for_selector('[data-worker="worker-4"][data-status="up"]', timeout=20_000)
    assert alive(worker_pid(page, "worker-4"))
    page.get_by_role("button", name="Pause worker-2", exact=True).click()
    page.wait_for_selector('[data-worker="worker-2"][data-status="paused"]', timeout=5_000)
    page.get_by_role("button", name="Resume worker-2", exact=True).click()
    page.wait_for_selector('[data-worker="worker-2"][data-status="up"]', timeout=10_000)


def test_switching_to_stateless_turns_sticky_sessions_off_until_the_learner_sets_them(
    page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server_url}/playground/")
    sticky = page.get_by_label("Sticky sessions")
    expect(sticky).to_be_checked()
    page.get_by_label("Stateless", exact=True).check()
    expect(sticky).not_to_be_checked()
    page.get_by_label("Stateful", exact=True).check()
    expect(sticky).to_be_checked()
    sticky.uncheck()  # the learner's own choice stands from now on
    page.get_by_label("Stateless", exact=True).check()
    page.get_by_label("Stateful", exact=True).check()
    expect(sticky).not_to_be_checked()


@pytest.mark.parametrize("viewport", [(1280, 800), (390, 844)])
def test_what_a_kill_did_is_in_view_and_has_the_focus(
    page: Any, live_server_url: str, labhost_process: HostProcess, viewport: tuple[int, int]
) -> None:
    from playwright.sync_api import expect

    width, height = viewport
    page.set_viewport_size({"width": width, "height": height})
    start_lab(page, live_server_url, "Stateful")
    sessions = page.locator('[data-worker="worker-1"] [data-field="sessions"]')
    wait_until(lambda: int(sessions.inner_text()) > 0, 15)
    kill_worker_1(page, labhost_process)
    change = page.locator("#lab-change")
    expect(change).to_be_focused()
    expect(change).to_contain_text("Since Kill worker-1:")
    wait_until(lambda: metric(page, "sessions_lost") > 0, 15)

    def lost_in_strip() -> int:
        text = change.inner_text()
        return int(text.split("+", 1)[1].split(" ", 1)[0])

    # Every chart marks the kill where it happened.
    def marked(chart: str) -> bool:
        return int(page.locator(f'[data-chart="{chart}"]').get_attribute("data-marks") or 0) >= 1

    wait_until(lambda: all(marked(chart) for chart in ("throughput", "failures", "latency")), 10)
    # The strip counts what the kill did: every session lost since, measured.
    wait_until(lambda: lost_in_strip() == metric(page, "sessions_lost") > 0, 10)
    box = change.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height
    # Still in view, below the site's sticky header, once the page is scrolled to its end.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    header = page.locator(".site-header").bounding_box()
    box = change.bounding_box()
    assert header is not None and box is not None
    assert header["y"] + header["height"] <= box["y"] and box["y"] + box["height"] <= height


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_a_running_lab_page_has_no_serious_accessibility_violations(
    audit_page: Any, live_server_url: str, labhost_process: HostProcess, theme: str
) -> None:
    page = audit_page
    page.emulate_media(color_scheme=theme)
    start_lab(page, live_server_url, "Stateful")
    kill_worker_1(page, labhost_process)  # a down worker, the strip, marks on the charts
    page.locator("#lab-change").wait_for()
    page.wait_for_timeout(500)  # the down worker's card has finished its colour transition
    assert axe_serious(page) == []
