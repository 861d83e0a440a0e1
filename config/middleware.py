"""Middleware of the project as a whole (apps keep their own). No app logic here."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SyncBoundary:
    """Last in MIDDLEWARE: Django runs the whole middleware stack as one synchronous call.

    Every middleware of the site has synchronous hooks, and WhiteNoise is synchronous only.
    Under ASGI, Django then ran each hook of the middleware below WhiteNoise in a
    sync_to_async hop of its own: about a dozen thread switches per page. A sync-only
    middleware innermost makes Django switch once, here. Views are unaffected: sync ones
    run in the request's thread, async ones on the event loop, as before.
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)
