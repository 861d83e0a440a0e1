"""DATABASE_URL=postgres://…: the site migrates, serves and records quiz answers on a real
PostgreSQL server (Debian's `postgresql`, started here on loopback in a temporary folder).

Skipped where PostgreSQL is not installed, except under CI, which installs it (.ci/run).
"""

from __future__ import annotations

import glob
import http.cookiejar
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.embedded_redis import free_port
from config.lifeline import die_with_parent
from tests.conftest import ROOT, start_daphne, stop_process


def postgres_bin() -> Path | None:
    """The folder of Debian's initdb and postgres (not on PATH by default)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return Path(folders[0]) if folders else None


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    folder = postgres_bin()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: .ci/run installs Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    # PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user.
    user = "postgres" if os.geteuid() == 0 else None
    # Not under pytest's temporary folder: it is private to root, and the server's user
    # must reach its data folder.
    base = Path(tempfile.mkdtemp(prefix="course-postgres-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if user:
        account = pwd.getpwnam(user)
        for path in (base, sockets):
            os.chown(path, account.pw_uid, account.pw_gid)
    try:
        yield from _serve(folder, user, data, sockets)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _serve(folder: Path, user: str | None, data: Path, sockets: Path) -> Iterator[str]:
    initdb: list[str | Path] = [folder / "initdb", "-D", data, "-U", "postgres"]
    subprocess.run(
        [*initdb, "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
        user=user,
        group=user,
    )
    port = free_port()
    postgres: list[str | Path] = [folder / "postgres", "-D", data, "-p", str(port), "-k", sockets]
    server = subprocess.Popen(
        [*postgres, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=die_with_parent,  # after the switch of user, which would clear it
        user=user,
        group=user,
    )
    try:
        url = f"postgres://postgres@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 30
        while subprocess.run(
            [folder / "pg_isready", "-h", "127.0.0.1", "-p", str(port)], capture_output=True
        ).returncode:
            assert server.poll() is None, "postgres exited at start"
            assert time.monotonic() < deadline, "postgres did not accept connections in 30 s"
            time.sleep(0.1)
        yield url
    finally:
        server.send_signal(signal.SIGINT)  # fast shutdown: ends every backend too
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_the_site_runs_on_postgresql_and_records_a_quiz_answer_and_a_reading(
    postgres_url: str, server_env: dict[str, str]
) -> None:
    import psycopg

    env = {**server_env, "DATABASE_URL": postgres_url}
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "Applying course." in migrate.stdout

    daphne, site = start_daphne(env)
    try:
        browser = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        page = browser.open(f"{site}/lessons/the-tradeoff/", timeout=10).read().decode()
        form = re.search(r'<form[^>]*action="(/lessons/the-tradeoff/quiz/[a-z0-9-]+/)"', page)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert form and token
        answer = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token.group(1), "choice": "1"}
        ).encode()
        with browser.open(f"{site}{form.group(1)}", data=answer, timeout=10) as response:
            assert response.status == 200  # after the redirect back to the lesson
        read = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1)}).encode()
        with browser.open(f"{site}/lessons/the-tradeoff/read/", data=read, timeout=10) as response:
            assert response.status == 200
    finally:
        stop_process(daphne)

    with psycopg.connect(postgres_url.replace("postgres://", "postgresql://")) as connection:
        rows = connection.execute(
            "SELECT lesson_slug, quiz_id, choices FROM course_quizanswer"
        ).fetchall()
        readings = connection.execute(
            "SELECT lesson_slug, read_at IS NOT NULL FROM course_lessonreading"
        ).fetchall()
    assert rows == [("the-tradeoff", form.group(1).rstrip("/").rsplit("/", 1)[1], [1])]
    assert readings == [("the-tradeoff", True)]  # opened, then read to its end
