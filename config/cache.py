"""Django's Redis cache, where sessions live, with one connection pool and one redis-py
client per process (per server URL and options).

Under ASGI, Django keeps its cache objects per request, and the stock backend builds a
connection pool per cache object and a redis-py client per operation: every request opened
a new TCP connection to Redis (and ran redis-py's handshake on it), and every cache call
spent about 0.1 ms building a client. Nothing but that sharing belongs here.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import Any, Self

import redis
from django.core.cache.backends import redis as django_redis

_pools: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class SharedConnectionPool(redis.ConnectionPool):
    """The same URL and options give the same pool, so connections outlive the request that
    opened them. redis-py pools and clients are thread-safe, drop connections Redis has
    closed when they are next taken, and start afresh after a fork."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Self:
        key = (url, repr(sorted(kwargs.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
        return pool

    @cached_property
    def client(self) -> redis.Redis:
        return redis.Redis(connection_pool=self)


class SharedRedisCacheClient(django_redis.RedisCacheClient):
    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        # Django's own choice of server (its private step; it has not changed since 4.0),
        # then that pool's one client instead of a new one.
        pool: SharedConnectionPool = self._get_connection_pool(write)  # type: ignore[attr-defined]
        return pool.client


class RedisCache(django_redis.RedisCache):
    """CACHES BACKEND: Django's RedisCache with the shared pool and client above."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        options = {**params.get("OPTIONS", {}), "pool_class": SharedConnectionPool}
        super().__init__(server, {**params, "OPTIONS": options})
        self._class = SharedRedisCacheClient
