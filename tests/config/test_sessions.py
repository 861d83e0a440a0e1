"""The session store: Django's cache sessions on Redis, minus a wasted round trip."""

from __future__ import annotations


def test_a_new_session_key_that_clashes_is_retried_not_overwritten() -> None:
    from config.sessions import SessionStore

    taken = SessionStore()
    taken["who"] = "first learner"
    taken.create()
    newcomer = SessionStore()
    keys = iter([taken.session_key, "b" * 32])
    newcomer._get_new_session_key = lambda: next(keys)  # type: ignore[method-assign]
    newcomer["who"] = "second learner"
    newcomer.save()
    assert newcomer.session_key == "b" * 32
    assert SessionStore(taken.session_key).load()["who"] == "first learner"


def test_new_session_keys_are_long_random_and_in_djangos_alphabet() -> None:
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS

    from config.sessions import SessionStore

    keys = {SessionStore()._get_new_session_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in keys:
        assert len(key) == 32
        assert set(key) <= set(VALID_KEY_CHARS)
    # Every character of the base32 alphabet turns up: the draw is not stuck on a subset.
    assert set("".join(keys)) == set("abcdefghijklmnopqrstuvwxyz234567")
