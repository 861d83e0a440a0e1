"""`manage.py runlabs`: run a lab host of the fleet until SIGTERM or SIGINT, then close its labs.

Any number may run, on one machine or many: each takes a name of its own (this machine's
name and the pid unless --name says otherwise) and joins the fleet the web tier places labs
on. From SIGTERM on it takes no new lab; with --drain it then waits for its labs to end (a
second SIGTERM ends the wait), and closes whatever is left.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import signal
from typing import Any

import redis.asyncio
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from playground import labprotocol
from playground.lab import Lab, WorkerPool
from playground.lab.config import MAX_WORKERS
from playground.labhost.host import HostAlreadyRunning, LabHost
from playground.labhost.limits import HostLimits

WARM_WORKERS = MAX_WORKERS  # any one lab starts with no process to boot


class Command(BaseCommand):
    help = "Run the lab host: the process that owns every lab (worker processes, balancers)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--name",
            default=None,
            help="Channel the host listens on, unique in the fleet (default: "
            "labhost-<machine>-<pid>).",
        )
        parser.add_argument(
            "--fleet",
            default=None,
            help="Fleet the host joins: the web tier places labs on the hosts of "
            "settings.PLAYGROUND_FLEET (default: that).",
        )
        parser.add_argument(
            "--drain",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="On SIGTERM, wait up to this long for labs to end before closing the rest "
            "(default: 0, close them at once; a second SIGTERM ends the wait).",
        )
        parser.add_argument(
            "--warm-workers",
            type=int,
            default=WARM_WORKERS,
            metavar="N",
            help="Worker processes kept started and idle for the next lab's start, which "
            "then waits for none of them to boot; restarts and added workers still spawn "
            f"(default: {WARM_WORKERS}, a lab's most; 0: none).",
        )
        parser.add_argument(
            "--max-labs",
            type=int,
            default=HostLimits.max_labs,
            help=f"Labs this host runs at most (default: {HostLimits.max_labs}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.REDIS_URL:
            # A private Redis would be no use here: the web processes could not reach it.
            raise CommandError(
                "set REDIS_URL to the Redis the web processes use (make run sets it for "
                "its lab host)"
            )
        # One long-lived process with a busy event loop. What it loaded to start (Django,
        # the modules: ~100,000 objects) lives as long as it does, so it is frozen out of
        # the collector's full passes, which took ~110 ms at 40 labs: a stall of every
        # lab's updates. And the young generation is collected every 10,000 net allocations
        # instead of 700: requests in flight and their timers keep ~11,000 young objects
        # alive, so the default ran a 5 ms pass three times a second that freed nothing.
        name = options["name"] or labprotocol.host_default_name()
        fleet = options["fleet"] or str(settings.PLAYGROUND_FLEET)
        for what, value in (("--name", name), ("--fleet", fleet)):
            if not labprotocol.HOST_NAME.match(value):
                raise CommandError(
                    f"{what} {value!r}: use 1 to 80 of letters, digits, '-', '_' and '.'"
                )
        if not 0 <= options["warm_workers"] <= 4 * MAX_WORKERS:
            raise CommandError(
                f"--warm-workers {options['warm_workers']}: from 0 to {4 * MAX_WORKERS}"
            )
        if options["max_labs"] < 1:
            raise CommandError(f"--max-labs {options['max_labs']}: at least 1")
        if not 0 <= options["drain"] <= 24 * 3600:
            raise CommandError(f"--drain {options['drain']:g}: from 0 to 86400 seconds")
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        try:
            asyncio.run(
                self._serve(
                    name=name,
                    fleet=fleet,
                    max_labs=options["max_labs"],
                    drain=options["drain"],
                    warm=options["warm_workers"],
                )
            )
        except HostAlreadyRunning as exc:
            raise CommandError(str(exc)) from None

    async def _serve(
        self, *, name: str, fleet: str, max_labs: int, drain: float, warm: int
    ) -> None:
        stop = asyncio.Event()
        hurry = asyncio.Event()  # the second signal: stop draining, close the labs now

        def signalled() -> None:
            (hurry if stop.is_set() else stop).set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, signalled)
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        pool = WorkerPool(warm)
        host = LabHost(
            layer=get_channel_layer(),
            redis=client,
            name=name,
            fleet=fleet,
            limits=HostLimits(max_labs=max_labs),
            lab_factory=functools.partial(Lab, pool=pool),
        )
        self.stdout.write(
            f"lab host {host.name!r} running in fleet {fleet!r}, at most {max_labs} labs "
            "(Ctrl-C stops it and every lab)"
        )
        try:
            async with pool:  # its processes end after the labs (host.run closes them)
                await host.run(stop, drain=drain, hurry=hurry)
        finally:
            await client.aclose()
