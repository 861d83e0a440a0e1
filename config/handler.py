"""The site's ASGI handler for HTTP: Django's, with the synchronous part in one thread hop."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, HttpResponseBase


class OneHopASGIHandler(ASGIHandler):
    """Django's ASGIHandler with the middleware and the views loaded as under WSGI.

    Every middleware of the site is synchronous (WhiteNoise has no async mode) and so is
    every view. Loaded in async mode, Django crossed between the event loop and a worker
    thread at each synchronous part: into the middleware stack, back to the loop below it,
    out again for the view middleware and for the view, and back each time. Here the stack,
    the URL resolution and the view run as one call on one thread, as under WSGI. Reading
    the body, sending the response and noticing a client's disconnect stay Django's own, on
    the event loop. An async view still works: Django runs it with async_to_sync, as it
    does under WSGI.
    """

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # BaseHandler.get_response: the URLconf, the middleware chain, the request's closers
        # and the log line of a 4xx/5xx, as the async version does them.
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)
