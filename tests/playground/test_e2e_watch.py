"""A lab shared with a class, in real Chromium: the owner shares it, three classmates open the
link in browsers of their own, watch a kill happen, have nothing to press, and hear when
sharing stops. And axe-core on a live watch page.

Live daphne server + `manage.py runlabs` subprocess + Chromium, as in test_e2e.py; the
selectors and messages are the page's contract (docs/playground-contract.md, "Sharing a lab
with a class").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from playground import consumers
from tests.conftest import axe_serious

from .conftest import HostProcess
from .test_e2e import kill_worker_1, start_lab

pytestmark = pytest.mark.e2e

# The worker controls of the owner's page (templates/playground/lab.html).
CONTROL = re.compile(r"^(Kill|Stop|Pause|Resume|Restart|Remove)")
CLASS_SIZE = 3
# Each socket the page opened and how it closed, in its own clock, for a failure's report:
# a socket the server drops (1006) reconnects, and then meets what the code is by then.
SOCKET_LOG = """
window.socketLog = [];
const note = (what) => window.socketLog.push([what, Math.round(performance.now())]);
document.addEventListener("htmx:wsOpen", () => note("open"));
document.addEventListener("htmx:wsClose", (e) => note(e.detail.event.code));
"""


def share(page: Any) -> str:
    """Press `Share with the class` on the owner's lab page; the link it shows."""
    page.get_by_role("button", name="Share with the class", exact=True).click()
    link = page.locator("[data-watch-url]")
    link.wait_for()
    href = link.get_attribute("href")
    assert href and re.search(r"/watch/[2-9A-Z]{4}-[2-9A-Z]{4}/$", href)
    assert href in page.locator("#lab-share").inner_text()  # shown, not only linked
    return str(href)


def enabled_controls(page: Any) -> int:
    controls = page.get_by_role("button", name=CONTROL)
    return sum(1 for n in range(controls.count()) if controls.nth(n).is_enabled())


def watch(context: Any, url: str) -> tuple[Any, list[str]]:
    """Open the watch link in a browser context of its own; (page, errors it logged)."""
    page = context.new_page()
    page.add_init_script(SOCKET_LOG)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    assert page.goto(url).status == 200
    for n in (1, 2, 3):
        page.wait_for_selector(f'[data-worker="worker-{n}"][data-status="up"]', timeout=20_000)
    return page, errors


@pytest.fixture
def contexts(browser: Any) -> Iterator[list[Any]]:
    """A class: browser contexts of their own (cookies and all), closed after the test."""
    opened = [browser.new_context() for _ in range(CLASS_SIZE)]
    yield opened
    for context in opened:
        context.close()


def test_a_class_watches_the_owner_kill_a_worker_and_hears_when_sharing_stops(
    page: Any, contexts: list[Any], live_server_url: str, labhost_process: HostProcess
) -> None:
    from playwright.sync_api import expect

    start_lab(page, live_server_url, "Stateful")
    url = share(page)
    watching = [watch(context, url) for context in contexts]
    assert enabled_controls(page) > 0  # the owner's page has them: the query finds them
    kill_worker_1(page, labhost_process)
    for watcher, _ in watching:
        watcher.wait_for_selector('[data-worker="worker-1"][data-status="down"]', timeout=5_000)
        assert enabled_controls(watcher) == 0
        # The one command a watch page can send: an answer to an open question (none here).
        commands = watcher.locator("[data-command]")
        assert commands.count() == 1 and commands.get_attribute("data-command") == (
            '{"action": "answer"}'
        )
        assert commands.is_hidden()
        for name in ("requests_ok", "sessions_lost"):
            assert watcher.locator(f'[data-metric="{name}"]').count() == 1
        expect(watcher.locator("#lab-conn")).to_have_text("Live")
    page.get_by_role("button", name="Stop sharing", exact=True).click()
    expect(page.get_by_role("button", name="Share with the class", exact=True)).to_be_visible()
    for watcher, errors in watching:
        print("a watcher's sockets:", watcher.evaluate("window.socketLog"))  # shown on failure
        expect(watcher.locator("#lab-gone")).to_contain_text(consumers.UNSHARED, timeout=5_000)
        expect(watcher.locator("#lab-conn")).to_have_text("Ended")
        assert errors == []
    # The owner's own page goes on.
    expect(page.locator("#lab-conn")).to_have_text("Live")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_a_live_watch_page_has_no_serious_accessibility_violations(
    page: Any, audit_page: Any, live_server_url: str, labhost_process: HostProcess, theme: str
) -> None:
    start_lab(page, live_server_url, "Stateful")
    url = share(page)
    audit_page.emulate_media(color_scheme=theme)
    watcher, errors = watch(audit_page.context, url)
    kill_worker_1(page, labhost_process)  # a down worker and an event on the watch page
    watcher.wait_for_selector('[data-worker="worker-1"][data-status="down"]', timeout=5_000)
    watcher.wait_for_timeout(500)  # the down worker's card has finished its colour transition
    assert axe_serious(watcher) == []
    assert errors == []
