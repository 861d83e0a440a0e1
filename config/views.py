"""Site-wide error pages. Nothing here may touch the session or the cache: Redis may be down."""

from __future__ import annotations

import logging
import sys

import redis
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.views.decorators.http import require_safe
from django_redis.exceptions import ConnectionInterrupted

# What Redis being down or hung raises: redis-py's own errors, and django-redis's wrapper
# of them (the cache backend raises ConnectionInterrupted from the redis-py error).
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, ConnectionInterrupted)
# Set here because a failure in the session middleware's response phase skips the inner
# middleware that would add them; these pages load nothing, so they allow nothing.
ERROR_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'none'",
    "X-Frame-Options": "DENY",
}


@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    """The proxy's health check: this web process answers. Touches no Redis and no database,
    so that a Redis outage (the site's own 503 pages) does not take every process out of the
    proxy at once, and thousands of checks cost nothing."""
    return HttpResponse("ok\n", content_type="text/plain")


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. Django calls it inside the `except` of the failed request, so the
    exception is at hand: a Redis that is down or hung is an outage (503), not a bug."""
    if isinstance(sys.exc_info()[1], REDIS_ERRORS):
        page = loader.get_template("503.html").render()
        return HttpResponse(page, status=503, headers={**ERROR_PAGE_HEADERS, "Retry-After": "30"})
    page = loader.get_template("500.html").render()
    return HttpResponse(page, status=500, headers=ERROR_PAGE_HEADERS)


class RedisOutageLogFilter(logging.Filter):
    """On django.request: a request that failed because Redis is down or hung logs one line
    (path, status and Redis's error), not a traceback. An outage is not a bug, and during one
    every request fails alike: a traceback each would bury the log (900 in one outage)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, REDIS_ERRORS):
            record.msg = f"{record.msg} (Redis unreachable: %s)"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()), exc)
            record.exc_info = None
            record.exc_text = None
        return True


class RedisOutageTaskLogFilter(logging.Filter):
    """On asyncio: a background task that a Redis outage ended logs one line, not "Task
    exception was never retrieved" and a traceback. channels-redis 4.3's `receive()` starts
    a task per message that clears it from a backup queue and never awaits it; when Redis
    dies between the two, asyncio reports the task's ConnectionError when it is collected
    (seen in the hostile run, bench/hostile.py). Anything else keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, REDIS_ERRORS):
            record.msg = "a background task ended: Redis unreachable (%s)"
            record.args = (exc,)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info = None
            record.exc_text = None
        return True
