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
