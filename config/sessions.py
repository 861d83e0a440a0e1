"""Django's cache session store, except that an unreachable Redis is an error, not a logout.

The stock store treats any cache error on load as "no session": with Redis down, a learner
would see an empty progress page and lose control of their lab, as if they were someone
else. Here a Redis outage propagates, so the site answers with its 503 page instead.
"""

from __future__ import annotations

import base64
import secrets
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

    # A new key is only ever written by create(), with SET NX (cache.add), which retries on
    # a clash: Django's EXISTS probe before it is a wasted Redis round trip per first visit.
    # 160 bits from one call to the OS's CSPRNG, written as 32 characters of base32 in lower
    # case (a-z, 2-7: all in Django's VALID_KEY_CHARS). Django's get_random_string draws the
    # same length one character, and one os.urandom call or more, at a time: about 50 us
    # of a first visit's CPU.
    def _get_new_session_key(self) -> str:
        return base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()

    async def _aget_new_session_key(self) -> str:
        return self._get_new_session_key()
