"""The shipped HAProxy configuration (deploy/haproxy.cfg) in front of two daphne processes and
two lab hosts, all real processes on loopback, driven through the proxy in Chromium.

A learner reads a lesson, answers a quiz and starts a lab; the daphne holding the lab's
socket is SIGKILLed and the page reconnects through the other one, its session, progress and
lab intact; then one lab host is SIGKILLed, and only its lab ends. Skipped without haproxy.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from config.embedded_redis import free_port
from config.lifeline import die_with_parent
from playground import labclient
from tests.conftest import ROOT, _wait_for_port, start_daphne, stop_process
from tests.course.test_e2e_learning import _single_choice_quiz
from tests.playground.conftest import (
    HostProcess,
    gone_within,
    start_runlabs,
    stop_runlabs_checked,
    wait_until,
)
from tests.playground.test_e2e import kill_worker_1, start_lab

pytestmark = pytest.mark.e2e


@dataclass
class Site:
    url: str
    daphnes: dict[int, subprocess.Popen[bytes]]  # port -> process
    hosts: list[HostProcess]

    def daphnes_with_a_socket(self) -> list[int]:
        """The ports of the daphne processes that hold an open connection from the proxy:
        with `http-server-close`, only a WebSocket stays open."""
        held = []
        for port, process in self.daphnes.items():
            if process.poll() is not None:
                continue
            connections = psutil.Process(process.pid).net_connections(kind="tcp")
            if any(c.status == "ESTABLISHED" and c.laddr.port == port for c in connections):
                held.append(port)
        return held

    def host_of(self, page: Any) -> HostProcess:
        lab_id = page.url.rstrip("/").rsplit("/", 1)[1]
        record = labclient.lab_get(lab_id)
        assert record is not None
        return next(h for h in self.hosts if h.name == record.host)


def haproxy_path() -> str | None:
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")


@pytest.fixture
def site(server_env: dict[str, str], redis_url: str) -> Iterator[Site]:
    haproxy = haproxy_path()
    if haproxy is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's haproxy is not installed; .ci/run installs it")
        pytest.skip("Debian's haproxy is not installed (apt-get install haproxy)")
    fleet = f"fleet-proxy-{uuid.uuid4().hex[:8]}"
    env = {**server_env, "TRUSTED_PROXIES": "127.0.0.1", "PLAYGROUND_FLEET": fleet}
    started: list[subprocess.Popen[bytes]] = []
    hosts: list[HostProcess] = []
    try:
        daphnes = {}
        for _ in range(2):
            process, url = start_daphne(env)
            started.append(process)
            daphnes[int(url.rsplit(":", 1)[1])] = process
        for _ in range(2):
            hosts.append(start_runlabs(env, redis_url, fleet=fleet))
        port = free_port()
        web = [f"127.0.0.1:{p}" for p in daphnes]
        proxy = subprocess.Popen(
            [haproxy, "-db", "-f", str(ROOT / "deploy/haproxy.cfg")],
            env={
                **env,
                "HAPROXY_BIND": f"127.0.0.1:{port}",
                "SITE_HOST": "127.0.0.1",
                "WEB_1": web[0],
                "WEB_2": web[1],
            },
            preexec_fn=die_with_parent,
        )
        started.append(proxy)
        _wait_for_port(port, proxy)
        yield Site(url=f"http://127.0.0.1:{port}", daphnes=daphnes, hosts=hosts)
    finally:
        for process in started:
            stop_process(process)
        for host in hosts:
            if host.process.poll() is None:
                stop_runlabs_checked(host)


def test_through_haproxy_a_learner_survives_a_killed_daphne_and_a_killed_lab_host(
    site: Site, browser: Any
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    other = browser.new_context()
    try:
        page = context.new_page()
        lesson, quiz = _single_choice_quiz()
        right = next(c for c in quiz.choices if c.correct)
        page.goto(f"{site.url}/lessons/{lesson.slug}/")
        section = page.locator(f"#quiz-{quiz.id}")
        section.locator(f'input[name="choice"][value="{right.number}"]').check()
        section.get_by_role("button", name="Check").click()
        expect(section.locator(".quiz-feedback")).to_contain_text("Correct!")

        start_lab(page, site.url, "Stateful")
        conn = page.locator("#lab-conn")
        expect(conn).to_have_attribute("data-state", "live")
        (holder,) = wait_until(lambda: site.daphnes_with_a_socket() or None, 10)

        site.daphnes[holder].send_signal(signal.SIGKILL)
        site.daphnes[holder].wait(timeout=10)
        # The page notices, reconnects through the proxy to the other daphne, and is live.
        expect(conn).not_to_have_attribute("data-state", "live", timeout=10_000)
        expect(conn).to_have_attribute("data-state", "live", timeout=20_000)
        assert site.daphnes_with_a_socket() == [p for p in site.daphnes if p != holder]
        # The lab is still the learner's to drive, through the surviving daphne.
        host = site.host_of(page)
        kill_worker_1(page, host)

        # Session and progress are in Redis: the quiz shows the learner's answer again.
        again = context.new_page()
        again.goto(f"{site.url}/lessons/{lesson.slug}/")
        expect(again.locator(f"#quiz-{quiz.id} .quiz-feedback")).to_contain_text("Correct!")
        again.close()

        # A second learner's lab goes to the less loaded host: the other one.
        second = other.new_page()
        start_lab(second, site.url, "Stateless")
        survivor = site.host_of(second)
        assert survivor is not host
        doomed = [p.pid for p in host.tree()]
        host.process.send_signal(signal.SIGKILL)
        host.process.wait(timeout=10)
        expect(page.locator("#lab-gone")).to_contain_text("stopped answering", timeout=15_000)
        expect(conn).to_have_attribute("data-state", "gone")
        assert gone_within(doomed, 10) == [], "processes of the killed lab host outlived it"
        # Only its lab: the other learner's lab is live and driven as before.
        expect(second.locator("#lab-conn")).to_have_attribute("data-state", "live")
        kill_worker_1(second, survivor)
    finally:
        context.close()
        other.close()
