"""A Redis that is down or hung: the learner gets a page that says so, not a hang."""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Iterator
from types import FrameType

import pytest
import redis
from django.conf import settings
from django.test import Client, override_settings

from config.embedded_redis import free_port

HANG_GUARD = 60


def _caches(url: str) -> dict[str, dict[str, object]]:
    return {"default": {**settings.CACHES["default"], "LOCATION": url}}


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A port that accepts connections and never answers, like a Redis stuck on a disk."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


class Hung(Exception):
    pass


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """Fails the test after HANG_GUARD seconds instead of letting it hang the run. A guard
    against a hang (no socket timeout at all), not a claim about how fast the page comes."""

    def fail(signum: int, frame: FrameType | None) -> None:
        raise Hung(f"still waiting after {HANG_GUARD} s: the request hangs on a hung Redis")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(HANG_GUARD)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def unanswering_client() -> Client:
    return Client(raise_request_exception=False)


def test_redis_down_gives_a_503_page_that_says_so(unanswering_client: Client) -> None:
    with override_settings(CACHES=_caches(f"redis://127.0.0.1:{free_port()}/0")):
        response = unanswering_client.get("/lessons/the-tradeoff/")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert "cannot reach Redis" in response.text
    # The session middleware failed on the way out, before CSP and framing headers were set.
    assert response.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert response.headers["X-Frame-Options"] == "DENY"


def test_redis_hung_gives_the_503_page_instead_of_hanging(
    unanswering_client: Client, hung_redis: str, hang_guard: None
) -> None:
    # The cache's socket timeout ends the wait; without one this request would never return.
    with override_settings(CACHES=_caches(hung_redis)):
        response = unanswering_client.get("/lessons/the-tradeoff/")
    assert response.status_code == 503
    assert "cannot reach Redis" in response.text


def test_other_errors_still_give_the_500_page(
    unanswering_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("course.views.course_snapshot", broken)
    response = unanswering_client.get("/lessons/the-tradeoff/")
    assert response.status_code == 500
    assert "Something went wrong" in response.text


def test_redis_down_is_an_outage_for_a_returning_learner_not_a_silent_logout(
    unanswering_client: Client,
) -> None:
    # Django's stock cache sessions would read "no session" and show an empty progress page.
    unanswering_client.cookies[settings.SESSION_COOKIE_NAME] = "a" * 32
    with override_settings(CACHES=_caches(f"redis://127.0.0.1:{free_port()}/0")):
        response = unanswering_client.get("/")
    assert response.status_code == 503
    assert "cannot reach Redis" in response.text


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 503),
        ("/lessons/the-tradeoff/", 503),
        ("/author/preview/", 503),
        ("/admin/", 503),
        ("/playground/", 503),
        ("/playground/labs/abcdefgh/", 503),
        # These read no session and nothing else from Redis: they go on working.
        ("/decide/", 200),
        ("/search/?q=session", 200),
    ],
)
def test_every_page_answers_503_or_works_for_a_returning_learner_while_redis_is_down(
    unanswering_client: Client, path: str, status: int
) -> None:
    unanswering_client.cookies[settings.SESSION_COOKIE_NAME] = "a" * 32
    with override_settings(CACHES=_caches(f"redis://127.0.0.1:{free_port()}/0")):
        response = unanswering_client.get(path, follow=True)
    assert response.status_code == status, response.redirect_chain
    if status == 503:
        assert response.headers["Retry-After"]
        assert "cannot reach Redis" in response.text


def test_a_redis_outage_logs_one_line_and_a_bug_its_traceback(
    unanswering_client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    unanswering_client.cookies[settings.SESSION_COOKIE_NAME] = "a" * 32
    with override_settings(CACHES=_caches(f"redis://127.0.0.1:{free_port()}/0")):
        unanswering_client.get("/")
    [outage] = [r for r in caplog.records if r.name == "django.request"]
    assert outage.exc_info is None
    assert outage.getMessage().startswith("Service Unavailable: / (Redis unreachable: ")
    caplog.clear()

    def broken(**_: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("course.views.course_snapshot", broken)
    unanswering_client.get("/lessons/the-tradeoff/")
    [bug] = [r for r in caplog.records if r.name == "django.request"]
    assert bug.exc_info is not None and isinstance(bug.exc_info[1], RuntimeError)


def test_a_task_that_a_redis_outage_ended_logs_one_line_and_a_bugs_task_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # What channels-redis's receive() leaves behind when Redis dies under it: a task that
    # failed and that nobody awaits. asyncio reports it when the task is collected.
    async def fails(exc: Exception) -> None:
        raise exc

    async def leave_failed_tasks() -> None:
        for exc in (redis.ConnectionError("Error 111 connecting"), RuntimeError("a bug")):
            task = asyncio.ensure_future(fails(exc))
            await asyncio.wait([task])
            del task  # collected here, its exception never retrieved

    asyncio.run(leave_failed_tasks())
    gc.collect()

    [outage, bug] = [r for r in caplog.records if r.name == "asyncio"]
    assert (outage.levelname, outage.exc_info) == ("WARNING", None)
    assert outage.getMessage() == (
        "a background task ended: Redis unreachable (Error 111 connecting)"
    )
    assert bug.getMessage().startswith("Task exception was never retrieved")
    assert bug.exc_info is not None and isinstance(bug.exc_info[1], RuntimeError)
