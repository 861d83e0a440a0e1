"""Where sessions live: in one worker's memory (stateful) or in Redis (stateless)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import cast

import redis

from tests.playground.worker.conftest import Worker, end, login


def test_stateful_sessions_live_and_die_in_one_process(
    start_worker: Callable[..., Worker],
) -> None:
    a = start_worker("--name", "a", "--mode", "stateful")
    b = start_worker("--name", "b", "--mode", "stateful")
    sid = login(a)
    assert a.call("GET", "/cart", None, sid)[0] == 200
    assert b.call("GET", "/cart", None, sid)[0] == 401  # b never saw it
    assert (a.health()["sessions"], b.health()["sessions"]) == (1, 0)


def test_stateless_sessions_live_in_redis_not_in_the_process(
    start_worker: Callable[..., Worker], redis_url: str
) -> None:
    prefix = f"test:{os.getpid()}:{time.monotonic_ns()}:"
    a = start_worker(
        "--name", "a", "--mode", "stateless", "--redis-url", redis_url, "--prefix", prefix
    )
    b = start_worker(
        "--name", "b", "--mode", "stateless", "--redis-url", redis_url, "--prefix", prefix
    )
    sid = login(a)
    assert b.call("POST", "/cart/items", {"sku": "sku-09"}, sid)[0] == 200
    end(a)  # the process that created the session is gone; nothing was lost
    assert b.call("GET", "/cart", None, sid)[1] == {"items": ["sku-09"]}
    client: redis.Redis = redis.Redis.from_url(redis_url)
    try:
        key = f"{prefix}session:{sid}"
        stored = cast(bytes | None, client.get(key))
        assert json.loads(stored or b"{}") == {"user": "alice", "cart": ["sku-09"]}
        assert 0 < cast(int, client.ttl(key)) <= 1800
    finally:
        client.close()
    assert b.health()["sessions"] == 0
