"""Fixtures shared by every test: the run's real Redis, a live daphne server, Chromium.

The Redis server is the embedded one that config.settings.test starts for this run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections

from config.embedded_redis import free_port
from config.lifeline import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def redis_url() -> str:
    return str(settings.REDIS_URL)


@pytest.fixture
async def async_orm() -> AsyncIterator[None]:
    """For a test whose code runs Django's async ORM. It opens a connection in asgiref's
    shared thread, which channels checks on every socket message, also in later tests
    where pytest-django forbids the database; the test database is in memory, where
    close() keeps the connection, so the thread forgets it instead."""
    yield
    await sync_to_async(_forget_connections)()


def _forget_connections() -> None:
    for connection in connections.all(initialized_only=True):
        del connections[connection.alias]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout}s")


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> dict[str, str]:
    """Environment for server subprocesses: test settings, this run's Redis, a migrated DB."""
    db = tmp_path_factory.mktemp("live") / "db.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{db}",
        "PYTHONUNBUFFERED": "1",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return env


def python_check(code: str, env: dict[str, str] | None = None) -> None:
    """Run `code` in a fresh Python (what a process of the site imports, from nothing); its
    assertions fail the test."""
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


def start_daphne(
    env: dict[str, str], port: int | None = None, module: str = "daphne"
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m <module>` serving the site: daphne, or config.webserver (daphne mended)."""
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            module,
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        preexec_fn=die_with_parent,
    )
    _wait_for_port(port, process)
    return process, f"http://127.0.0.1:{port}"


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def live_server_url(server_env: dict[str, str]) -> Iterator[str]:
    """A real daphne server running the site with the test settings."""
    process, url = start_daphne(server_env)
    yield url
    stop_process(process)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed; .ci/run installs it")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; no ORM runs in-process here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context()  # type: ignore[attr-defined]
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def audit_page(browser: object) -> Iterator[object]:
    """A page for axe-core: its context bypasses the CSP, which would block the injected
    axe script (the site's own scripts still run as they do for learners)."""
    context = browser.new_context(bypass_csp=True)  # type: ignore[attr-defined]
    pg = context.new_page()
    yield pg
    context.close()


def axe_serious(page: object) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']}: "
        + "; ".join(
            f"{node['target'][0]} {node['html'][:120]} {node['failureSummary']}"
            for node in v["nodes"][:5]
        )
        for v in violations
        if v["impact"] in {"serious", "critical"}
    ]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Browser tests last: once the session's browser starts, Playwright's sync API keeps an
    # event loop running in this thread, and no async test after it could start its own.
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
