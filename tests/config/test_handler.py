"""config.handler: Django's ASGI cycle with the synchronous part of a request in one hop.

Driven through the ASGI interface itself (asgiref's ApplicationCommunicator), with a
URLconf and a middleware of this module's own.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from asgiref.testing import ApplicationCommunicator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from config.handler import OneHopASGIHandler

seen: list[tuple[str, int]] = []  # (what ran, on which thread)


class RecordingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        seen.append(("middleware", threading.get_ident()))
        return self.get_response(request)

    def process_view(self, request: HttpRequest, *args: Any) -> None:
        seen.append(("process_view", threading.get_ident()))


def sync_view(request: HttpRequest) -> HttpResponse:
    seen.append(("view", threading.get_ident()))
    return HttpResponse(b"sync view", content_type="text/plain")


async def async_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"async view", content_type="text/plain")


def streaming_view(request: HttpRequest) -> StreamingHttpResponse:
    async def chunks() -> AsyncIterator[bytes]:
        for chunk in (b"one ", b"two"):
            yield chunk

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def broken_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("broken on purpose")


urlpatterns = [
    path("sync/", sync_view),
    path("async/", async_view),
    path("stream/", streaming_view),
    path("broken/", broken_view),
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    f"{__name__}.RecordingMiddleware",
]


@pytest.fixture
def handler() -> Iterator[OneHopASGIHandler]:
    seen.clear()
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=MIDDLEWARE, DEBUG=False):
        yield OneHopASGIHandler()


async def get(handler: OneHopASGIHandler, url: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(handler, scope)
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await communicator.receive_output(timeout=5)
    assert start["type"] == "http.response.start"
    body = b""
    while True:
        message = await communicator.receive_output(timeout=5)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.wait(timeout=5)
    return start["status"], body


async def test_a_sync_view_and_every_middleware_hook_run_in_one_hop_off_the_loop(
    handler: OneHopASGIHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops: list[str] = []
    real_call = SyncToAsync.__call__

    async def counting_call(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await real_call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting_call)
    loop_thread = threading.get_ident()

    assert await get(handler, "/sync/") == (200, b"sync view")

    # Besides Django's own around every request (the request_started signal's receivers
    # and closing the response), one hop: the middleware, the view middleware and the view.
    bookends = {"Signal.asend.<locals>.sync_send", "HttpResponseBase.close"}
    assert [hop for hop in hops if hop not in bookends] == ["BaseHandler.get_response"]
    assert [what for what, _ in seen] == ["middleware", "process_view", "view"]
    threads = {thread for _, thread in seen}
    assert len(threads) == 1 and loop_thread not in threads


async def test_an_async_view_still_answers(handler: OneHopASGIHandler) -> None:
    assert await get(handler, "/async/") == (200, b"async view")


async def test_a_streaming_response_arrives_whole(handler: OneHopASGIHandler) -> None:
    assert await get(handler, "/stream/") == (200, b"one two")


async def test_errors_answer_as_django_would(handler: OneHopASGIHandler) -> None:
    status, _ = await get(handler, "/nowhere/")
    assert status == 404
    status, _ = await get(handler, "/broken/")
    assert status == 500
