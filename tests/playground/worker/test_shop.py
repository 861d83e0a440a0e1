"""The shop's API over real HTTP, in both modes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.playground.worker.conftest import Worker, login


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
