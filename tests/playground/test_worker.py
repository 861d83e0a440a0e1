"""The worker process on its own: its shop API over real HTTP, its sessions, its death."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from config.lifeline import die_with_parent

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)

    def call(
        self,
        method: str,
        path: str,
        data: Any = None,
        session: str | None = None,
        conn: http.client.HTTPConnection | None = None,
    ) -> tuple[int, Any, http.client.HTTPResponse]:
        own = conn is None
        conn = conn or self.connect()
        headers = {"Cookie": f"session={session}"} if session else {}
        body = json.dumps(data) if data is not None else None
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
        finally:
            if own:
                conn.close()
        return response.status, payload, response

    def health(self) -> dict[str, Any]:
        return self.call("GET", "/health")[1]


def spawn(*args: str) -> Worker:
    process = subprocess.Popen(
        [sys.executable, "-m", "playground.worker", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(b"READY "):
        process.kill()
        _, err = process.communicate()
        raise AssertionError(f"worker did not start: {err.decode()}")
    return Worker(process, int(line.split()[1]))


def end(worker: Worker) -> None:
    if worker.process.poll() is None:
        os.killpg(worker.process.pid, signal.SIGKILL)
    worker.process.communicate()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def factory(*args: str) -> Worker:
        worker = spawn(*args)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        end(worker)
    assert not [
        w
        for w in started
        if psutil.pid_exists(w.process.pid)
        and psutil.Process(w.process.pid).status() != psutil.STATUS_ZOMBIE
    ]


def login(worker: Worker, user: str = "alice") -> str:
    status, data, response = worker.call("POST", "/login", {"user": user})
    assert status == 200
    assert response.getheader("Set-Cookie", "").startswith(f"session={data['session']};")
    return str(data["session"])


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
def test_shop_journey_over_one_keep_alive_connection(
    mode: str, start_worker: Callable[..., Worker], redis_url: str
) -> None:
    worker = start_worker(
        "--name", "worker-7", "--mode", mode, "--redis-url", redis_url, "--prefix", f"test:{mode}:"
    )
    sid = login(worker)
    conn = worker.connect()
    try:
        assert worker.call("POST", "/cart/items", {"sku": "sku-01"}, sid, conn)[1] == {
            "items": ["sku-01"]
        }
        socket_used = conn.sock
        assert worker.call("POST", "/cart/items", {"sku": "sku-02"}, sid, conn)[0] == 200
        status, cart, response = worker.call("GET", "/cart", None, sid, conn)
        assert conn.sock is socket_used  # the same connection: kept alive
        assert (status, cart) == (200, {"items": ["sku-01", "sku-02"]})
        assert response.getheader("X-Worker") == "worker-7"
        status, order, _ = worker.call("POST", "/checkout", None, sid, conn)
        assert status == 200 and order["items"] == ["sku-01", "sku-02"]
        assert worker.call("GET", "/cart", None, sid, conn)[1] == {"items": []}
        assert worker.call("POST", "/checkout", None, sid, conn)[0] == 400  # empty cart
    finally:
        conn.close()
    health = worker.health()
    assert health["name"] == "worker-7" and health["mode"] == mode
    assert health["pid"] == worker.process.pid
    assert health["inflight"] == 0 and health["requests"] == 7
    assert health["sessions"] == (1 if mode == "stateful" else 0)


@pytest.mark.parametrize("mode", ["stateful", "stateless"])
def test_unknown_session_is_401(
    mode: str, start_worker: Callable[..., Worker], redis_url: str
) -> None:
    worker = start_worker("--name", "w", "--mode", mode, "--redis-url", redis_url)
    assert worker.call("GET", "/cart", None, "no-such-session")[0] == 401
    assert worker.call("GET", "/cart")[0] == 401
    sid = login(worker)
    assert worker.call("POST", "/logout", None, sid)[0] == 200
    assert worker.call("GET", "/cart", None, sid)[0] == 401


def test_bad_requests_get_clear_errors(start_worker: Callable[..., Worker]) -> None:
    worker = start_worker("--name", "w", "--mode", "stateful")
    sid = login(worker)
    assert worker.call("GET", "/nowhere")[0] == 404
    assert worker.call("GET", "/login")[0] == 405
    assert worker.call("POST", "/cart/items", {"sku": ""}, sid)[0] == 400
    conn = worker.connect()
    try:
        conn.request("POST", "/login", body=b"{not json")
        response = conn.getresponse()
        assert response.status == 400 and "JSON" in json.loads(response.read())["error"]
    finally:
        conn.close()


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, Any]]:
    answers = []
    with sock.makefile("rb") as stream:
        for _ in range(count):
            status = int(stream.readline().split()[1])
            headers = {}
            while (line := stream.readline()) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.lower()] = value.strip()
            answers.append((status, json.loads(stream.read(int(headers["content-length"])))))
    return answers


def test_requests_in_pieces_and_back_to_back_are_answered_in_order(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker("--name", "w", "--mode", "stateful", "--work-ms", "20")
    sid = login(worker)
    body = b'{"sku": "sku-03"}'
    cookie = f"Cookie: session={sid}\r\n"
    add = f"POST /cart/items HTTP/1.1\r\n{cookie}Content-Length: {len(body)}\r\n\r\n"
    cart = f"GET /cart HTTP/1.1\r\n{cookie}\r\n"
    health = "GET /health HTTP/1.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as sock:
        raw = add.encode() + body
        sock.sendall(raw[:7])  # a head, then a body, in pieces
        time.sleep(0.05)
        sock.sendall(raw[7:-4])
        time.sleep(0.05)
        sock.sendall(raw[-4:] + (cart + health).encode())  # and two more right behind
        answers = read_answers(sock, 3)
    assert answers[0] == (200, {"items": ["sku-03"]})
    assert answers[1] == (200, {"items": ["sku-03"]})
    # The health check waited for the requests before it (login, add, cart): in order.
    assert answers[2][0] == 200 and answers[2][1]["requests"] == 3


def test_a_head_over_the_limit_ends_the_connection(start_worker: Callable[..., Worker]) -> None:
    worker = start_worker("--name", "w", "--mode", "stateful")
    with socket.create_connection(("127.0.0.1", worker.port), timeout=5) as sock:
        sock.sendall(b"GET /cart HTTP/1.1\r\nX-Big: " + b"x" * 20_000)
        try:
            answer = sock.recv(1024)
        except ConnectionResetError:  # closed with bytes of ours still unread
            answer = b""
        assert answer == b""  # closed, without an answer
    assert worker.health()["requests"] == 0


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
    client = redis.Redis.from_url(redis_url)
    try:
        key = f"{prefix}session:{sid}"
        assert json.loads(client.get(key) or b"{}") == {"user": "alice", "cart": ["sku-09"]}
        assert 0 < client.ttl(key) <= 1800
    finally:
        client.close()
    assert b.health()["sessions"] == 0


def test_sigterm_drains_the_request_in_flight_then_exits_0(
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_worker("--name", "w", "--mode", "stateful", "--work-ms", "400")
    result: dict[str, Any] = {}

    def slow_login() -> None:
        status, data, response = worker.call("POST", "/login", {"user": "slow"})
        result.update(status=status, connection=response.getheader("Connection"))

    thread = threading.Thread(target=slow_login)
    thread.start()
    deadline = time.monotonic() + 5
    while worker.health()["inflight"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    idle = worker.connect()
    idle.connect()  # a kept-alive connection with no request: closed by the drain

    worker.process.send_signal(signal.SIGTERM)

    thread.join(timeout=5)
    assert result == {"status": 200, "connection": "close"}
    assert worker.process.wait(timeout=5) == 0
    with pytest.raises(ConnectionRefusedError):
        worker.connect().connect()
    idle.close()


def test_worker_exits_when_its_parent_dies_even_without_pdeathsig() -> None:
    # The middle process spawns a worker with no PR_SET_PDEATHSIG at all: only the
    # worker's own watchdog (its parent pid changed) can make it exit.
    middle_code = (
        "import os, subprocess, sys, time;"
        "p = subprocess.Popen([sys.executable, '-m', 'playground.worker', '--name', 'w',"
        " '--mode', 'stateful', '--parent-pid', str(os.getpid())], stdout=subprocess.PIPE);"
        "p.stdout.readline(); print(p.pid, flush=True); time.sleep(60)"
    )
    middle = subprocess.Popen(
        [sys.executable, "-c", middle_code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert middle.stdout is not None
    worker_pid = int(middle.stdout.readline())
    try:
        assert psutil.pid_exists(worker_pid)
    finally:
        middle.kill()
        middle.wait()
        middle.stdout.close()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            if psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.02)
    else:
        os.kill(worker_pid, signal.SIGKILL)
        pytest.fail("the worker outlived its parent")


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
    from playground.worker import parse_redis_url

    assert parse_redis_url(url) == parsed
