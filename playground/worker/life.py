"""A worker's life: its flags, its start ("READY <port>"), its end on SIGTERM, and its
death with its parent. Standard library only (and config.lifeline, itself stdlib only).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys

from config.lifeline import die_with

from . import __doc__ as usage
from .server import Server
from .shop import Shop

WATCHDOG_INTERVAL = 0.2


async def watchdog(parent: int) -> None:
    """Second guard next to the PR_SET_PDEATHSIG that main() sets: exit as soon as our
    parent process is gone, also where the kernel offers no such call (not Linux, or
    ctypes unavailable), so a worker never outlives the lab that spawned it.

    A pidfd of the parent turns readable when it exits, so the event loop tells us at
    no cost. Polling getppid() every 200 ms cost each worker five wakeups a second, 0.7
    to 1.5 ms of CPU a second on the course machine: a tenth of a core at 40 labs.
    Without pidfds (not Linux 5.3+, or refused) the worker polls getppid() instead.
    """
    try:
        pidfd = os.pidfd_open(parent)
    except (AttributeError, OSError):
        pidfd = None
    # Checked after opening: if the parent had already gone, the pid could name another.
    if os.getppid() != parent:
        os._exit(70)
    if pidfd is None:
        while True:
            await asyncio.sleep(WATCHDOG_INTERVAL)
            if os.getppid() != parent:
                os._exit(70)
    loop = asyncio.get_running_loop()
    loop.add_reader(pidfd, os._exit, 70)
    try:
        await loop.create_future()  # until cancelled at a normal exit
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


async def main(args: argparse.Namespace) -> int:
    parent = args.parent_pid or os.getppid()
    # The lifeline is set here rather than in a preexec_fn so that the lab host can spawn
    # with vfork instead of fork-copying its memory for each worker. Unlike the watchdog,
    # it also reaches a paused (SIGSTOPped) worker.
    if not die_with(parent):
        return 70  # the spawner died before we even started
    shop = Shop(args)
    chat = None
    if args.workload == "chat":
        chat_libraries()
        from .chat import Chat  # wsproto: only a chat worker pays for its import

        chat = Chat(
            name=args.name,
            mode=args.mode,
            capacity=shop.capacity,
            redis_url=args.redis_url,
            prefix=args.prefix,
        )
        shop.connections = lambda: chat.connections if chat is not None else 0
    server = Server(shop, chat)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(server.protocol, args.host, args.port, backlog=512)
    port = listener.sockets[0].getsockname()[1]

    def stop() -> None:
        listener.close()
        server.drain()

    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    guard = asyncio.create_task(watchdog(parent))
    os.write(1, f"READY {port}\n".encode())
    await server.done.wait()
    guard.cancel()
    if chat is not None:
        await chat.close()
    await shop.sessions.close()
    return 0


def claimed_argv(pooled: list[str]) -> list[str]:
    """A warm worker's wait (`--pooled --parent-pid N`): everything is imported; say
    "WAITING", then block until the lab host sends a lab's flags, one JSON list on a line
    of stdin, and return them. It dies with the host meanwhile: the lifeline, and the end
    of stdin (also how the pool lets one go)."""
    if pooled[:1] != ["--parent-pid"] or len(pooled) != 2 or not pooled[1].isdigit():
        raise SystemExit("worker: use --pooled --parent-pid N")
    if not die_with(int(pooled[1])):
        raise SystemExit(70)
    os.write(1, b"WAITING\n")
    line = sys.stdin.buffer.readline()
    if not line:
        raise SystemExit(0)
    argv = json.loads(line)
    if not isinstance(argv, list) or not all(isinstance(arg, str) for arg in argv):
        raise SystemExit("worker: a claim is a JSON list of flags")
    return argv


def chat_libraries() -> None:
    """Workers run with `python -S` (no site-packages, a faster start); a chat worker
    needs wsproto, whose directories the lab passes in PLAYGROUND_WORKER_LIBS. They go
    after the standard library, so no stdlib import looks there first."""
    for path in os.environ.get("PLAYGROUND_WORKER_LIBS", "").split(os.pathsep):
        if path and path not in sys.path:
            sys.path.append(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m playground.worker", description=usage)
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", choices=("stateful", "stateless"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument(
        "--workload",
        choices=("shop", "chat"),
        default="shop",
        help="shop: HTTP sessions and carts; chat: WebSocket rooms at /chat/<room>",
    )
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--prefix", default="lab:default:")
    parser.add_argument("--session-ttl", type=float, default=1800.0)
    parser.add_argument("--max-sessions", type=int, default=100_000)
    parser.add_argument("--work-ms", type=float, default=0.0, help="work per request (a wait)")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="requests served at once; the rest queue"
    )
    parser.add_argument("--version", type=int, default=1, help="the release it runs (deploys)")
    parser.add_argument(
        "--handoff", action="store_true", help="stateful: hand sessions to the store on a stop"
    )
    parser.add_argument("--parent-pid", type=int, default=0)
    return parser.parse_args(argv)
