"""Where a worker keeps its shop's sessions: in its own memory (stateful) or in Redis
(stateless). The one difference between the two modes lives here. Standard library only.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .resp import RedisClient


class MemorySessions:
    """Stateful: sessions live in this dict and die with the process."""

    def __init__(self, ttl: float, max_sessions: int) -> None:
        self.ttl = ttl
        self.max_sessions = max_sessions
        self.data: dict[str, tuple[float, dict[str, Any]]] = {}

    def count(self) -> int:
        # Every save re-inserts with the same TTL, so the dict is ordered by expiry: drop
        # expired sessions from the front (O(expired), /health runs five times a second).
        now = time.monotonic()
        while self.data:
            sid = next(iter(self.data))
            if self.data[sid][0] >= now:
                break
            del self.data[sid]
        return len(self.data)

    async def load(self, sid: str) -> dict[str, Any] | None:
        item = self.data.get(sid)
        if item is None or item[0] < time.monotonic():
            self.data.pop(sid, None)
            return None
        return item[1]

    async def save(self, sid: str, session: dict[str, Any]) -> None:
        self.data.pop(sid, None)  # re-insert: the dict stays ordered by expiry
        self.data[sid] = (time.monotonic() + self.ttl, session)
        while len(self.data) > self.max_sessions:
            del self.data[next(iter(self.data))]

    async def delete(self, sid: str) -> None:
        self.data.pop(sid, None)

    async def close(self) -> None:
        return None


class HandoffSessions(MemorySessions):
    """Stateful, with a drain that hands off: sessions live in memory; asked to hand off
    (before a graceful stop), the worker writes them all to the store and from then on
    writes through; a worker that misses a session looks for a handed-off one there and
    takes it over. A kill hands off nothing."""

    def __init__(self, ttl: float, max_sessions: int, url: str, prefix: str) -> None:
        super().__init__(ttl, max_sessions)
        self.redis = RedisClient(url)
        self.prefix = prefix
        self.writing_through = False

    def key(self, sid: str) -> str:
        return f"{self.prefix}handoff:{sid}"

    async def load(self, sid: str) -> dict[str, Any] | None:
        session = await super().load(sid)
        if session is not None or self.writing_through:
            return session
        raw = await self.redis.command("GETDEL", self.key(sid))
        if raw is None:
            return None
        session = json.loads(raw)
        await super().save(sid, session)  # ours now
        return session

    async def save(self, sid: str, session: dict[str, Any]) -> None:
        await super().save(sid, session)
        if self.writing_through:
            await self.redis.command("SET", self.key(sid), json.dumps(session), "EX", "60")

    async def delete(self, sid: str) -> None:
        await super().delete(sid)
        if self.writing_through:
            await self.redis.command("DEL", self.key(sid))

    async def hand_off(self) -> int:
        """Write every session to the store in one round trip; write through after."""
        self.count()  # drop the expired ones first
        commands = [
            ("SET", self.key(sid), json.dumps(session), "EX", "60")
            for sid, (_, session) in self.data.items()
        ]
        await self.redis.pipeline(commands)
        self.writing_through = True
        return len(commands)

    async def close(self) -> None:
        await self.redis.close()


class RedisSessions:
    """Stateless: every request loads and saves its session in Redis (raises RedisError
    when Redis cannot be reached)."""

    def __init__(self, url: str, prefix: str, ttl: float) -> None:
        self.redis = RedisClient(url)
        self.prefix = prefix
        self.ttl = max(1, int(ttl))

    def count(self) -> int:
        return 0  # nothing is held in this process's memory

    def key(self, sid: str) -> str:
        return f"{self.prefix}session:{sid}"

    async def load(self, sid: str) -> dict[str, Any] | None:
        raw = await self.redis.command("GET", self.key(sid))
        return None if raw is None else json.loads(raw)

    async def save(self, sid: str, session: dict[str, Any]) -> None:
        await self.redis.command("SET", self.key(sid), json.dumps(session), "EX", str(self.ttl))

    async def delete(self, sid: str) -> None:
        await self.redis.command("DEL", self.key(sid))

    async def close(self) -> None:
        await self.redis.close()
