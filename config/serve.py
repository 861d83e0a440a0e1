"""`make run`: the whole site on one machine, and nothing left behind on Ctrl-C.

Starts an embedded Redis when REDIS_URL is unset, applies migrations, then runs daphne
(the stateless web tier) and the lab host (`manage.py runlabs`, the stateful part) as
children. A child that dies is started again, as a process manager would in production:
kill the lab host in front of a class and the site stays up, the running labs end, and a
new lab can be started a moment later. A child that cannot start at all (an error exit
within STARTUP seconds of its first start) or keeps dying (RESTARTS + 1 exits within
WINDOW seconds) stops the whole site with a message instead of looping. Ctrl-C or SIGTERM stops
every child and the embedded Redis; if this process is killed outright, the kernel kills
the children (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque

from config import embedded_redis
from config.lifeline import die_with_parent

RESTARTS = 5
WINDOW = 60.0
# A child that exits with an error this soon after its first start did not crash: it could
# not start (a port in use, a broken setting), and starting it again would only repeat the
# error. One killed by a signal is started again whenever it dies.
STARTUP = 3.0
ASGI_APP = "config.asgi:application"


class Child:
    """One supervised process: its command and the times it was started."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.argv = argv
        self.starts: deque[float] = deque(maxlen=RESTARTS + 1)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts.append(time.monotonic())
        self.process = subprocess.Popen(self.argv, preexec_fn=die_with_parent)

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


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    redis = None
    if not os.environ.get("REDIS_URL"):
        redis = embedded_redis.start()
        os.environ["REDIS_URL"] = redis.url
        print(f"embedded Redis on {redis.url} (no persistence)", flush=True)

    python = sys.executable
    children = [
        Child("lab host", [python, "manage.py", "runlabs"]),
        Child("daphne", [python, "-m", "daphne", "-b", host, "-p", port, ASGI_APP]),
    ]
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
        print(f"serving http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)
        while not stopping:
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
        deadline = time.monotonic() + 10
        for child in children:
            child.terminate()
        for child in children:
            child.reap(deadline)
        if redis is not None:
            redis.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
