"""Virtual users: asyncio tasks that shop through the balancer and notice what was lost.

Each user keeps the truth about its own session and cart, so a lost session or cart is
detected by comparing the server's answers with what the user knows, never assumed.
No Django imports here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from .metrics import Metrics
from .wire import BadMessage, Connection, Request, Response

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
REQUEST_TIMEOUT = 4.0  # longer than the balancer's upstream timeout: its 504 comes first
# Timeouts use `asyncio.timeout()`, never `asyncio.wait_for()`: on Python 3.11 wait_for
# can swallow a cancellation that races with its result, and a lab would never close.
CATALOG = 40
MAX_CART_GUESSES = 16

Cart = list[str]


class SessionLost(Exception):
    """The server no longer knows this user's session: start over with a login."""


class VirtualUser:
    """One shopper: log in, add 1-4 items, view the cart, check out, again and again."""

    def __init__(
        self,
        name: str,
        *,
        port: int,
        metrics: Metrics,
        period: Callable[[], float],
        session_ttl: Callable[[], float] = lambda: float("inf"),
        seed: int | None = None,
    ) -> None:
        self.name = name
        self.session_ttl = session_ttl  # how long it keeps a session before it leaves
        self.port = port
        self.metrics = metrics
        self.period = period  # seconds between this user's requests, on average
        self.rng = random.Random(seed)
        self.conn: Connection | None = None
        self.cookies: dict[str, str] = {}
        self.session: str | None = None
        self.session_worker: str | None = None  # the worker that created the session
        self.session_since = 0.0  # when it logged in (time.monotonic)
        # What the cart may hold: one list when the user knows, several after a request
        # failed mid-flight (it may or may not have been applied), None when unknown.
        self.carts: list[Cart] | None = [[]]
        self.relogin_due = False
        self.lost_on: dict[str, int] = {}  # worker -> sessions of this user lost there
        self.checked = 0  # answers checked against its session: each could have been a loss
        self.next_send = 0.0
        self.task: asyncio.Task[None] | None = None

    @property
    def pinned_to(self) -> str | None:
        """The worker its sticky cookie names, if any."""
        return self.cookies.get("LB")

    # -- life --

    def start(self, first_delay: float) -> None:
        self.next_send = time.monotonic() + first_delay
        self.task = asyncio.create_task(self.run(), name=f"virtual-{self.name}")

    async def stop(self) -> None:
        task, self.task = self.task, None
        while task is not None and not task.done():
            task.cancel()  # again if a cancellation was lost on the way
            await asyncio.wait({task}, timeout=0.5)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: a crashed user must not log "never retrieved"
        self.disconnect()

    async def leave(self, within: float = 0.5) -> None:
        """Stop, then log out (best effort, unmeasured) so no worker keeps its session."""
        await self.stop()
        if self.session is None:
            return
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError, BadMessage):
            async with asyncio.timeout(within):
                conn = await Connection.open(HOST, self.port, within)
                try:
                    await conn.exchange(self._request("POST", "/logout", None))
                finally:
                    conn.close()
        self.session = None

    def disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    async def run(self) -> None:
        while True:
            try:
                await self.journey()
            except SessionLost:
                continue
            except (ValueError, KeyError, TypeError):  # an answer that is not the shop's
                log.exception("%s got an unexpected answer; starting over", self.name)
                self.disconnect()
                self.session = None
                self.carts = None

    async def journey(self) -> None:
        if self.session is not None and time.monotonic() - self.session_since > self.session_ttl():
            await self.log_out()  # this visitor leaves; a new one arrives with no cookie
        while self.session is None:
            await self.login()
        for _ in range(self.rng.randint(1, 4)):
            await self.add_item()
        await self.view_cart()
        await self.checkout()

    # -- steps --

    async def login(self) -> None:
        response = await self.send("POST", "/login", {"user": self.name})
        if response is None or response.status != 200:
            return
        self.session = response.json()["session"]
        self.session_worker = response.header("X-Worker")
        self.session_since = time.monotonic()
        self.carts = [[]]
        if self.relogin_due:
            self.metrics.relogin()
            self.relogin_due = False

    async def log_out(self) -> None:
        """End the session on purpose (not a loss): log out, forget every cookie, so the
        balancer places the next session afresh."""
        response = await self.send("POST", "/logout", None)
        if response is not None and response.status == 401:
            self._check_session(response)  # it was gone already: that was a loss
        self.session = None
        self.cookies.clear()
        self.carts = [[]]

    async def add_item(self) -> None:
        sku = f"sku-{self.rng.randint(1, CATALOG):02d}"
        expected = None if self.carts is None else [cart + [sku] for cart in self.carts]
        response = await self.send("POST", "/cart/items", {"sku": sku})
        if response is None:  # it may or may not have been added
            self._guess(None if self.carts is None or expected is None else self.carts + expected)
            return
        self._check_session(response)
        self._compare(response.json()["items"], expected)

    async def view_cart(self) -> None:
        while True:
            response = await self.send("GET", "/cart", None)
            if response is not None:
                break
        self._check_session(response)
        self._compare(response.json()["items"], self.carts)

    async def checkout(self) -> None:
        response = await self.send("POST", "/checkout", None)
        if response is None:  # the order may or may not have been placed
            self._guess(None if self.carts is None else [*self.carts, []])
            return
        self._check_session(response)
        if response.status == 400:  # "the cart is empty": the server has no items
            self._compare([], self.carts)
        else:
            self._compare(response.json()["items"], self.carts)
        self.carts = [[]]

    # -- the user's truth --

    def _guess(self, carts: list[Cart] | None) -> None:
        if carts is not None:
            unique: list[Cart] = []
            for cart in carts:
                if cart not in unique:
                    unique.append(cart)
            carts = unique if len(unique) <= MAX_CART_GUESSES else None
        self.carts = carts

    def _compare(self, items: Cart, expected: list[Cart] | None) -> None:
        if expected is not None and items not in expected:
            self.metrics.cart_lost()
        self.carts = [list(items)]

    def _check_session(self, response: Response) -> None:
        self.checked += 1
        if response.status != 401:
            return
        # The user had a session and the server does not know it: lost.
        worker = self.session_worker or "?"
        self.metrics.session_lost(self.name, worker)
        if self.carts is not None and all(self.carts):
            self.metrics.cart_lost()
        self.lost_on[worker] = self.lost_on.get(worker, 0) + 1
        self.session = None
        self.cookies.pop("session", None)
        self.carts = [[]]
        self.relogin_due = True
        raise SessionLost

    # -- HTTP --

    def _request(self, method: str, path: str, data: dict[str, Any] | None) -> Request:
        headers = [("Host", "shop"), ("User-Agent", f"virtual-user/{self.name}")]
        if self.cookies:
            headers.append(("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        body = b""
        if data is not None:
            body = json.dumps(data).encode()
            headers.append(("Content-Type", "application/json"))
        return Request(method=method, target=path, headers=headers, body=body)

    async def _pace(self) -> None:
        """Think time: requests leave on average every period() seconds, jittered."""
        now = time.monotonic()
        if self.next_send > now:
            await asyncio.sleep(self.next_send - now)
        start = max(now, self.next_send)
        self.next_send = start + self.period() * self.rng.uniform(0.5, 1.5)

    async def send(self, method: str, path: str, data: dict[str, Any] | None) -> Response | None:
        """Send one request through the balancer. Returns the response, or None when it
        failed (counted as failed: 5xx, connection error, timeout)."""
        await self._pace()
        request = self._request(method, path, data)
        started = time.perf_counter()
        try:
            if self.conn is None or not self.conn.usable:
                self.disconnect()
                self.conn = await Connection.open(HOST, self.port, REQUEST_TIMEOUT)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                response = await self.conn.exchange(request)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, BadMessage):
            self.disconnect()
            self.metrics.request_failed()
            return None
        except BaseException:
            self.disconnect()  # cancelled mid-request: the connection is in an unknown state
            raise
        latency = time.perf_counter() - started
        for header in response.all_headers("set-cookie"):
            name, _, value = header.split(";", 1)[0].partition("=")
            self.cookies[name.strip()] = value.strip()
        if response.status < 300:
            self.metrics.request_ok(latency, response.header("X-Worker") or "?")
            return response
        if response.status == 401 or (response.status == 400 and path == "/checkout"):
            return response  # the caller compares it with what the user knows
        self.metrics.request_failed()
        return None


class Crowd:
    """All the virtual users of a lab, sharing the request rate."""

    def __init__(
        self,
        *,
        port: int,
        metrics: Metrics,
        users: int,
        rate: float,
        session_ttl: float = float("inf"),
    ) -> None:
        self.port = port
        self.metrics = metrics
        self.rate = rate
        self.session_ttl = session_ttl
        self.users: dict[str, VirtualUser] = {}
        self.size = users

    def period(self) -> float:
        return max(1, len(self.users)) / self.rate

    def _new(self, number: int) -> VirtualUser:
        user = VirtualUser(
            f"user-{number}",
            port=self.port,
            metrics=self.metrics,
            period=self.period,
            session_ttl=lambda: self.session_ttl,
        )
        self.users[user.name] = user
        return user

    def start(self) -> None:
        for number in range(1, self.size + 1):
            self._new(number)
        for user in self.users.values():
            user.start(user.rng.uniform(0, self.period()))

    async def resize(self, size: int) -> None:
        old = self.size
        self.size = size
        if size > old:
            for number in range(old + 1, size + 1):
                self._new(number).start(self.rng_delay())
        else:
            leaving = [self.users.pop(f"user-{n}") for n in range(size + 1, old + 1)]
            await asyncio.gather(*(user.leave() for user in leaving))

    def rng_delay(self) -> float:
        return random.uniform(0, self.period())

    async def restart(self) -> None:
        """Everyone logs out and starts a fresh journey as a new visitor."""
        await asyncio.gather(*(user.leave() for user in self.users.values()))
        self.users.clear()
        self.start()

    async def close(self) -> None:
        await asyncio.gather(*(user.stop() for user in self.users.values()))

    def pinned(self) -> dict[str, list[str]]:
        """Worker name -> users whose sticky cookie names it."""
        result: dict[str, list[str]] = {}
        for user in self.users.values():
            if user.pinned_to:
                result.setdefault(user.pinned_to, []).append(user.name)
        return result
