"""`make run`: the whole site on one machine, and nothing left behind on Ctrl-C.

Starts an embedded Redis when REDIS_URL is unset, applies migrations, then runs daphne (the
stateless web tier) and the lab host (`manage.py runlabs`, the stateful part) as children.
With HOST=0.0.0.0 (or ::), a classroom: the machine's LAN addresses (config/lan.py) go to
the children's settings (LAN_ADDRESSES: allowed hosts; PLAYGROUND_PUBLIC_URL unless set) and
are printed as "Students join at http://<address>:<port>/". A child that dies is started
again, as a process manager would in production: kill the lab host in front of a class and
the site stays up, the running labs end, and a new lab can be started a moment later. The
embedded Redis is supervised too: started again on the same port (so every client reconnects
to it), REDIS_FIRST_DELAY seconds after it died, then twice as long after each death that
follows within WINDOW seconds, so that an outage is a window the other processes live
through, not a race. It comes back empty (no persistence): sessions and progress are lost;
the lab host re-writes its labs' records. A child that cannot start at all (an error exit
within STARTUP seconds of its first start) or keeps dying (RESTARTS + 1 exits within WINDOW
seconds) stops the whole site with a message instead of looping. Ctrl-C or SIGTERM stops
every child and the embedded Redis; if this process is killed outright, the kernel kills the
children (PR_SET_PDEATHSIG).

Ctrl-C reaches this process only (each child runs in a process group of its own), and the
children are stopped one after the other, each while the ones it talks to still run: the
lab host first (it ends its labs and tells every viewer why, through Redis and daphne: the
socket closes with 4404 "The lab host stopped."), then daphne once its sockets have closed
(at most SOCKETS_GRACE seconds; whatever is still open hears "this web server is
restarting"), then Redis. A terminal's Ctrl-C used to reach all of them at once: Redis died
under the others and the sockets dropped with 1006 and no word.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, MutableMapping

import psutil

from config import embedded_redis, lan
from config.lifeline import die_with_parent

RESTARTS = 5
WINDOW = 60.0
# A child that exits with an error this soon after its first start did not crash: it could
# not start (a port in use, a broken setting), and starting it again would only repeat the
# error. One killed by a signal is started again whenever it dies.
STARTUP = 3.0
REDIS_FIRST_DELAY = 1.0
REDIS_MAX_DELAY = 30.0
ASGI_APP = "config.asgi:application"
STOP_SECONDS = 10.0  # per child, then SIGKILL
SOCKETS_GRACE = 2.0  # for daphne's sockets to close after the lab host stopped


class Child:
    """One supervised process: its command and the times it was started."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.starts: deque[float] = deque(maxlen=RESTARTS + 1)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts.append(time.monotonic())
        # A process group of its own: the terminal's Ctrl-C reaches the launcher only, which
        # stops the children in order.
        self.process = subprocess.Popen(self.argv, preexec_fn=die_with_parent, process_group=0)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def may_restart(self, code: int) -> bool:
        """False when it could not start, or has been started RESTARTS + 1 times within
        WINDOW seconds."""
        now = time.monotonic()
        if code > 0 and len(self.starts) == 1 and now - self.starts[0] < STARTUP:
            return False
        return len(self.starts) <= RESTARTS or now - self.starts[0] > WINDOW

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def reap(self, deadline: float) -> None:
        """Wait for it until deadline, then SIGKILL it."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class SupervisedRedis:
    """The embedded Redis as a child: started again on its own port after a delay that
    doubles with each death within WINDOW seconds of the last start."""

    def __init__(self, server: embedded_redis.EmbeddedRedis, clock: Callable[[], float]) -> None:
        self.server = server
        self.clock = clock
        self.started = clock()
        self.delay = REDIS_FIRST_DELAY
        self.restart_at: float | None = None

    def check(self) -> None:
        """Notice a death and schedule the restart; start it again once that time comes."""
        if self.restart_at is None:
            code = self.server.process.poll()
            if code is None:
                return
            if self.clock() - self.started > WINDOW:
                self.delay = REDIS_FIRST_DELAY  # up for a good while: a fresh failure
            self.restart_at = self.clock() + self.delay
            print(
                f"embedded Redis exited with {code}; starting it again on port "
                f"{self.server.port} in {self.delay:g} s",
                flush=True,
            )
            return
        if self.clock() < self.restart_at:
            return
        port = self.server.port
        self.server.stop()  # already dead: this only removes its working directory
        self.delay = min(self.delay * 2, REDIS_MAX_DELAY)
        try:
            self.server = embedded_redis.start(port=port)
        except RuntimeError as exc:  # e.g. something else took the port meanwhile
            self.restart_at = self.clock() + self.delay
            print(f"embedded Redis: {exc}; next try in {self.delay:g} s", flush=True)
            return
        self.started = self.clock()
        self.restart_at = None
        print(f"embedded Redis is back on port {port} (empty: no persistence)", flush=True)

    def stop(self) -> None:
        self.server.stop()


def sockets_closed(web: Child, port: int, deadline: float) -> None:
    """Wait until the web server holds no connection on its port, or until deadline (a
    browser's idle keep-alive connection holds it that long)."""
    if web.process is None:
        return
    try:
        server = psutil.Process(web.process.pid)
        while time.monotonic() < deadline:
            held = [
                c
                for c in server.net_connections(kind="tcp")
                if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
            ]
            if not held:
                return
            time.sleep(0.05)
    except psutil.Error:  # it is gone already
        return


def classroom(host: str, port: str, environ: MutableMapping[str, str]) -> list[str]:
    """With a wildcard HOST (students on their own laptops): put the machine's LAN addresses
    in `environ` for the children's settings (ALLOWED_HOSTS, PLAYGROUND_PUBLIC_URL unless
    set) and return the lines that tell students where to join. Otherwise nothing."""
    if not lan.is_wildcard(host):
        return []
    addresses = lan.lan_addresses(families=lan.WILDCARDS[host])
    environ["LAN_ADDRESSES"] = ",".join(addresses)
    if not addresses:
        return ["no LAN address found (is the network up?): only this machine can open the site"]
    if not environ.get("PLAYGROUND_PUBLIC_URL"):
        environ["PLAYGROUND_PUBLIC_URL"] = lan.join_url(addresses[0], port)
    return [f"Students join at {lan.join_url(address, port)}/" for address in addresses]


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    join = classroom(host, port, os.environ)
    redis = None
    if not os.environ.get("REDIS_URL"):
        server = embedded_redis.start()
        os.environ["REDIS_URL"] = server.url
        redis = SupervisedRedis(server, time.monotonic)
        print(f"embedded Redis on {server.url} (no persistence)", flush=True)

    python = sys.executable
    lab_host = Child("lab host", [python, "manage.py", "runlabs"])
    web = Child("daphne", [python, "-m", "config.webserver", "-b", host, "-p", port, ASGI_APP])
    children = [lab_host, web]  # the order they stop in
    stopping = False
    failed = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], check=True)
        for child in children:
            child.start()
        shown = "127.0.0.1" if lan.is_wildcard(host) else lan.url_host(host)
        print(f"serving http://{shown}:{port}/  (Ctrl-C stops everything)", flush=True)
        for line in join:
            print(line, flush=True)
        while not stopping:
            if redis is not None:
                redis.check()
            for child in children:
                code = child.exited()
                if code is None or stopping:
                    continue
                if child.may_restart(code):
                    print(f"{child.name} exited with {code}; starting it again", flush=True)
                    child.start()
                else:
                    print(
                        f"{child.name} exited with {code} and is not started again (it "
                        f"could not start, or exited {RESTARTS + 1} times in {WINDOW:.0f} s); "
                        "stopping",
                        file=sys.stderr,
                        flush=True,
                    )
                    stopping = failed = True
            time.sleep(0.2)
    except subprocess.CalledProcessError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in children:
            child.terminate()
            child.reap(time.monotonic() + STOP_SECONDS)
            if child is lab_host:
                sockets_closed(web, int(port), time.monotonic() + SOCKETS_GRACE)
        if redis is not None:
            redis.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
