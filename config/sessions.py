"""Django's cache session store, except that an unreachable Redis is an error, not a logout.

The stock store treats any cache error on load as "no session": with Redis down, a learner
would see an empty progress page and lose control of their lab, as if they were someone
else. Here a Redis outage propagates, so the site answers with its 503 page instead.
Nothing else of Django's store changes (keys, their creation, saving).
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import cache

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
