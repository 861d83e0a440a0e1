"""The worker's HTTP/1.1 server: errors, requests in pieces and pipelined, size limits."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

from tests.playground.worker.conftest import Worker, login


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
