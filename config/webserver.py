"""`python -m config.webserver [daphne's options] config.asgi:application`: daphne, with its
shutdown mended so that open sockets hear why they close. Takes daphne's own arguments.

On SIGINT or SIGTERM, daphne cancels every application, waits for them, then Twisted drops
every connection, writing nothing more. daphne 4.2.3's `Server.kill_all_applications`
does that wait badly in two ways: it raises KeyError, and so cancels nothing, when a
connection has no application (an HTTP connection that closed within the last second,
before daphne's once-a-second sweep removed it); and it waits only until the first
application ends (`asyncio.gather` stops at the first CancelledError). A lab socket's last
frame ("this web server is restarting") then never left: it reached the browser in about
2 shutdowns out of 5. Here every application is cancelled and all are awaited, at most
SHUTDOWN_SECONDS. The override is of a public method of daphne's documented server class,
through the CLI's own `server_class` hook; no upstream ticket found (2026-11-30). Retire it
when daphne's `kill_all_applications` skips connections without an application and waits
for all: tests/config/test_webserver.py shows the difference on a real server.
"""

from __future__ import annotations

import asyncio
import logging
import sys

# daphne.server installs Twisted's asyncio reactor: import it before anything else of Twisted.
from daphne.server import Server  # isort: skip
from daphne.cli import CommandLineInterface
from twisted.internet import defer

log = logging.getLogger("config.webserver")

SHUTDOWN_SECONDS = 5.0  # per shutdown, for every application together (each socket's
# goodbye waits on Redis for at most 2 s: playground.consumers.LEAVE_TIMEOUT)


class GracefulServer(Server):  # type: ignore[misc]  # daphne has no type hints
    def kill_all_applications(self) -> defer.Deferred[None]:
        """Cancel every running application and wait for all of them (bounded)."""
        running = [
            details["application_instance"]
            for details in self.connections.values()
            if "application_instance" in details and not details["application_instance"].done()
        ]
        for application in running:
            application.cancel()
        log.info("cancelled %d application instances", len(running))
        if not running:
            return defer.succeed(None)

        async def all_ended() -> None:
            await asyncio.wait(running, timeout=SHUTDOWN_SECONDS)

        return defer.Deferred.fromFuture(asyncio.ensure_future(all_ended()))


class WebServerCommand(CommandLineInterface):  # type: ignore[misc]
    server_class = GracefulServer


if __name__ == "__main__":
    sys.exit(WebServerCommand().run(sys.argv[1:]))
