"""Django's cache session store, except that an unreachable Redis is an error, not a logout.

The stock store treats any cache error on load as "no session": with Redis down, a learner
would see an empty progress page and lose control of their lab, as if they were someone
else. Here a Redis outage propagates, so the site answers with its 503 page instead.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import cache
from django.contrib.sessions.backends.base import VALID_KEY_CHARS
from django.utils.crypto import get_random_string

from config.views import REDIS_ERRORS


class SessionStore(cache.SessionStore):
    def load(self) -> dict[str, Any]:
        try:
            data = self._cache.get(self.cache_key)  # type: ignore[attr-defined]
        except REDIS_ERRORS:
            raise
        except Exception:  # e.g. an invalid key: start a fresh session, as Django does
            data = None
        if data is not None:
            return data  # type: ignore[no-any-return]
        self._session_key = None
        return {}

    async def aload(self) -> dict[str, Any]:
        try:
            data = await self._cache.aget(await self.acache_key())  # type: ignore[attr-defined]
        except REDIS_ERRORS:
            raise
        except Exception:
            data = None
        if data is not None:
            return data  # type: ignore[no-any-return]
        self._session_key = None
        return {}

    # A new key is only ever written by create(), with SET NX (cache.add), which retries on
    # a clash: Django's EXISTS probe before it is a wasted Redis round trip per first visit.
    def _get_new_session_key(self) -> str:
        return get_random_string(32, VALID_KEY_CHARS)

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()
