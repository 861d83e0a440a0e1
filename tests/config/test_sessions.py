"""The session store: Django's cache sessions on Redis (django-redis), loud when Redis is down.

The 503 a learner sees when Redis is down is in test_errors.py; here, what the store keeps.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from config.embedded_redis import free_port
from config.sessions import SessionStore
from config.views import REDIS_ERRORS


def test_a_session_saved_by_one_process_loads_in_another() -> None:
    # Two stores with nothing in common but Redis, as two web processes are.
    first = SessionStore()
    first["progress"] = ["the-tradeoff"]
    first.create()
    again = SessionStore(first.session_key)
    assert again.load() == {"progress": ["the-tradeoff"]}
    assert again.session_key == first.session_key


def test_new_sessions_never_share_a_key() -> None:
    keys = set()
    for n in range(50):
        store = SessionStore()
        store["n"] = n
        store.create()
        keys.add(store.session_key)
    assert len(keys) == 50
    assert sorted(SessionStore(key).load()["n"] for key in keys) == list(range(50))


def test_an_unknown_key_starts_an_empty_session_under_a_new_key() -> None:
    store = SessionStore("a" * 32)
    assert store.load() == {}
    store["who"] = "newcomer"
    store.save()
    assert store.session_key != "a" * 32  # no session fixation: the cookie's key is not kept


def test_redis_down_is_an_error_not_an_empty_session() -> None:
    caches = {
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    }
    with override_settings(CACHES=caches), pytest.raises(REDIS_ERRORS):
        SessionStore("b" * 32).load()


async def test_redis_down_is_an_error_in_async_code_too() -> None:
    caches = {
        "default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}
    }
    with override_settings(CACHES=caches), pytest.raises(REDIS_ERRORS):
        await SessionStore("c" * 32).aload()
