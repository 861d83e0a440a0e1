"""A class in real Chromium: the owner presents a shared lab, asks a question, the class
answers from their own browsers, and the measured answer shows on every screen.

Live daphne server + `manage.py runlabs` + Chromium; the selectors and names are the
contract (docs/playground-contract.md, "Questions to the class").
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.conftest import axe_serious

from .conftest import HostProcess, wait_until

pytestmark = pytest.mark.e2e


def measured(page: Any) -> float:
    found = page.locator("[data-poll-measured]")
    return float(found.inner_text()) if found.count() else 0.0


def test_the_class_predicts_the_presenter_acts_by_keyboard_and_the_numbers_answer(
    browser: Any, page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page.goto(f"{live_server_url}/playground/")
    page.get_by_label("Workers").fill("3")
    page.get_by_role("button", name="Start lab").click()
    page.wait_for_url("**/playground/labs/*/")
    page.get_by_role("button", name="Share with the class").click()
    watch_url = page.locator("[data-watch-url]").inner_text()
    page.get_by_role("link", name="Presenter view").click()
    page.wait_for_url("**/present/")
    for n in (1, 2, 3):
        page.wait_for_selector(f'[data-worker="worker-{n}"][data-status="up"]', timeout=20_000)
    assert page.locator(".pg-join-code").inner_text() in watch_url

    contexts = [browser.new_context() for _ in range(2)]
    try:
        watchers = [context.new_page() for context in contexts]
        for watcher in watchers:
            watcher.goto(watch_url)
            watcher.wait_for_selector('[data-worker="worker-1"][data-status="up"]', timeout=20_000)

        # The presenter asks the default question: a number, measured as sessions lost.
        page.get_by_role("button", name="Ask the class").click()
        page.wait_for_selector('#lab-poll[data-poll-state="open"]', timeout=10_000)
        for watcher, prediction in zip(watchers, ("4", "9"), strict=True):
            watcher.wait_for_selector('#lab-poll[data-poll-state="open"]', timeout=10_000)
            watcher.get_by_label("Your prediction").fill(prediction)
            watcher.get_by_role("button", name="Answer", exact=True).click()
            watcher.wait_for_selector("#lab-poll-mine:has-text('Your answer: ')", timeout=10_000)
            assert watcher.locator("#lab-poll-number").is_hidden()  # once each
        page.wait_for_selector("[data-poll-answered]:has-text('2')", timeout=10_000)

        # By keyboard, as from the front of a room: close the question, then k 1.
        page.locator("body").press("c")
        page.wait_for_selector('#lab-poll[data-poll-state="closed"]', timeout=10_000)
        held = page.locator('[data-worker="worker-1"] [data-field="sessions"]')
        wait_until(lambda: int(held.inner_text()) > 0, 15)  # worker-1 holds sessions to lose
        page.locator("body").press("k")
        page.locator("body").press("1")
        page.wait_for_selector('[data-worker="worker-1"][data-status="down"]', timeout=10_000)
        for screen in (page, *watchers):
            assert wait_until(functools.partial(measured, screen), 20)  # > 0 measured
            assert "within 20%" in screen.locator("#lab-poll").inner_text()

        # A choice question: answered with one click, the share shown to everyone.
        # (The presenter view keeps the question form open.)
        page.get_by_label("one of these choices").check()
        page.get_by_role("button", name="Ask the class").click()
        for watcher in watchers:
            watcher.wait_for_selector('#lab-poll[data-poll-kind="choice"]', timeout=10_000)
            watcher.get_by_role("button", name="Answer: Only worker-1's").click()
            watcher.wait_for_selector('#lab-poll-mine:has-text("Only worker-1\'s")', timeout=10_000)
        page.wait_for_selector("#lab-poll:has-text('2 (100%)')", timeout=10_000)
    finally:
        for context in contexts:
            context.close()


def test_a_watch_page_with_an_open_question_passes_axe(
    browser: Any, page: Any, audit_page: Any, live_server_url: str, labhost_process: HostProcess
) -> None:
    page.goto(f"{live_server_url}/playground/")
    page.get_by_role("button", name="Start lab").click()
    page.wait_for_url("**/playground/labs/*/")
    page.get_by_role("button", name="Share with the class").click()
    watch_url = page.locator("[data-watch-url]").inner_text()
    page.get_by_text("Ask the class a question").click()
    page.get_by_label("one of these choices").check()
    page.get_by_role("button", name="Ask the class").click()
    audit_page.goto(watch_url)
    audit_page.wait_for_selector('#lab-poll[data-poll-state="open"]', timeout=20_000)
    audit_page.wait_for_selector('[data-worker="worker-1"]', timeout=20_000)
    assert audit_page.get_by_role("button", name="Answer: None").is_enabled()
    assert axe_serious(audit_page) == []
