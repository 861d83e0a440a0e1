"""`manage.py runlabs`: run the lab host until SIGTERM or SIGINT, then close every lab."""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import Any

import redis.asyncio
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from playground.labhost.host import HostAlreadyRunning, LabHost
from playground.labhost.limits import HostLimits


class Command(BaseCommand):
    help = "Run the lab host: the process that owns every lab (worker processes, balancers)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--name",
            default=None,
            help="Channel the host listens on (default: settings.PLAYGROUND_LABHOST).",
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
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        try:
            asyncio.run(
                self._serve(
                    name=options["name"] or str(settings.PLAYGROUND_LABHOST),
                    max_labs=options["max_labs"],
                )
            )
        except HostAlreadyRunning as exc:
            raise CommandError(str(exc)) from None

    async def _serve(self, *, name: str, max_labs: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        host = LabHost(
            layer=get_channel_layer(),
            redis=client,
            name=name,
            limits=HostLimits(max_labs=max_labs),
        )
        self.stdout.write(f"lab host {host.name!r} running (Ctrl-C stops it and every lab)")
        try:
            await host.run(stop)
        finally:
            await client.aclose()
