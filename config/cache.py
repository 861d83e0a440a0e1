"""One Redis connection pool per process for Django's Redis cache, where sessions live.

Under ASGI, Django keeps its cache objects per request, and each new RedisCache builds its
own connection pool: every request opened a fresh TCP connection to Redis (and ran
redis-py's handshake on it) to read one session. Nothing but that pooling belongs here.
"""

from __future__ import annotations

import threading
from typing import Any, Self

import redis

_pools: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class SharedConnectionPool(redis.ConnectionPool):
    """The cache's OPTIONS["pool_class"]: the same URL and options give the same pool, so
    connections outlive the request that opened them. redis-py pools are thread-safe, drop
    connections Redis has closed when they are next taken, and start afresh after a fork."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        key = (url, repr(sorted(kwargs.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
        return pool
