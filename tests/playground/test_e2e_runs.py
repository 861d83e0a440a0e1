"""A saved run in real Chromium: save a lab's run after a kill, scrub its timeline with the
keyboard, and open its permalink read-only from a second browser context.

Live daphne server + `manage.py runlabs` subprocess + Chromium, as tests/playground/test_e2e.py.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.conftest import axe_serious

from .conftest import HostProcess, wait_until
from .test_e2e import kill_worker_1, metric, start_lab

pytestmark = pytest.mark.e2e


def shown_worker_1(page: Any) -> str:
    return str(page.locator('#run-workers [data-worker="worker-1"]').get_attribute("data-status"))


def test_a_saved_run_scrubs_and_its_permalink_opens_read_only_elsewhere(
    page: Any, audit_page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    from playwright.sync_api import expect

    complaints = start_lab(page, live_server_url, "Stateful")
    wait_until(lambda: metric(page, "requests_ok") > 30, 15)
    kill_worker_1(page, labhost_process)
    wait_until(lambda: metric(page, "sessions_lost") > 0, 15)
    page.wait_for_timeout(2_000)  # a few frames with worker-1 down
    page.get_by_role("button", name="Save this run", exact=True).click()
    page.wait_for_url("**/playground/runs/*/")
    permalink = page.url
    page.wait_for_selector('#run[data-ready="true"]')
    run = page.request.get(permalink.rstrip("/") + ".json").json()
    frames = run["frames"]
    assert [m["label"] for m in run["marks"]] == ["worker-1 killed"]
    assert frames[0]["t"] < run["marks"][0]["t"] < frames[-1]["t"]

    # Every chart marks the kill; the page opens on the last frame.
    for chart in ("throughput", "failures", "latency"):
        expect(page.locator(f'[data-chart="{chart}"]')).to_have_attribute("data-marks", "1")
    last = frames[-1]
    assert shown_worker_1(page) == "down"
    assert metric(page, "requests_ok") == last["metrics"]["requests_ok"]

    # Scrub with the keyboard: the first second, then one step on, then the end.
    scrub = page.get_by_label("Time in the run")
    scrub.focus()
    page.keyboard.press("Home")
    expect(page.locator("#run")).to_have_attribute("data-frame", "0")
    assert metric(page, "requests_ok") == frames[0]["metrics"]["requests_ok"]
    assert metric(page, "requests_ok") < last["metrics"]["requests_ok"]
    assert shown_worker_1(page) != "down"
    # As the page rounds (JavaScript's Math.round: 0.5 goes up, Python's round() to even).
    expect(page.locator("#run-at")).to_have_text(
        f"{math.floor(frames[0]['t'] + 0.5)} s of {math.floor(last['t'] + 0.5)} s"
    )
    page.keyboard.press("ArrowRight")
    expect(page.locator("#run")).to_have_attribute("data-frame", "1")
    assert metric(page, "requests_ok") == frames[1]["metrics"]["requests_ok"]
    page.keyboard.press("End")
    expect(page.locator("#run")).to_have_attribute("data-frame", str(len(frames) - 1))
    assert shown_worker_1(page) == "down"
    assert complaints == []  # the run page's scripts and fetch pass the CSP too

    # Anyone with the link: another browser, no session of the owner's.
    other = page.context.browser.new_context()
    try:
        stranger = other.new_page()
        assert stranger.goto(permalink).status == 200
        stranger.wait_for_selector('#run[data-ready="true"]')
        expect(stranger.get_by_role("link", name="Download JSON")).to_be_visible()
        expect(stranger.get_by_role("link", name="Download CSV")).to_be_visible()
        expect(stranger.get_by_role("button", name="Delete this run")).to_have_count(0)
        expect(stranger.get_by_role("button", name="Save this run")).to_have_count(0)
        stranger.get_by_label("Time in the run").focus()
        stranger.keyboard.press("Home")
        expect(stranger.locator("#run")).to_have_attribute("data-frame", "0")
    finally:
        other.close()
    expect(page.get_by_role("button", name="Delete this run")).to_be_visible()

    for theme in ("light", "dark"):
        audit_page.emulate_media(color_scheme=theme)
        audit_page.goto(permalink)
        audit_page.wait_for_selector('#run[data-ready="true"]')
        assert axe_serious(audit_page) == []
