"""A worker started as `python -m playground.worker`, as the lab engine starts it, for
tests that talk to it over real HTTP and end it with real signals.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from config.lifeline import die_with_parent
from tests.conftest import ROOT


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
