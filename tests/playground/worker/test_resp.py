"""The worker's own Redis client."""

from __future__ import annotations

import pytest

from playground.worker.resp import parse_redis_url


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("redis://127.0.0.1:6379/0", ("127.0.0.1", 6379, None, None, 0)),
        ("redis://localhost", ("localhost", 6379, None, None, 0)),
        ("redis://:pa%40ss@cache:6380/2", ("cache", 6380, None, "pa@ss", 2)),
        ("redis://me:secret@cache:7/", ("cache", 7, "me", "secret", 0)),
        ("redis://[::1]:6380/3", ("::1", 6380, None, None, 3)),
    ],
)
def test_redis_url_parsing(url: str, parsed: tuple) -> None:
    assert parse_redis_url(url) == parsed
