"""`make run`: the whole site on one machine, and nothing left behind on Ctrl-C.

Starts an embedded Redis when REDIS_URL is unset, applies migrations, then runs daphne
(the stateless web tier) and the lab host (`manage.py runlabs`, the stateful part) as
children. Ctrl-C or SIGTERM stops every child and the embedded Redis; if this process is
killed outright, the kernel kills the children (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from config import embedded_redis


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
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], check=True)
        children["lab host"] = subprocess.Popen(
            [python, "manage.py", "runlabs"], preexec_fn=embedded_redis.die_with_parent
        )
        children["daphne"] = subprocess.Popen(
            [python, "-m", "daphne", "-b", host, "-p", port, "config.asgi:application"],
            preexec_fn=embedded_redis.die_with_parent,
        )
        print(f"serving http://{host}:{port}/  (Ctrl-C stops everything)", flush=True)
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    print(f"{name} exited with {child.returncode}; stopping", flush=True)
                    stopping = True
            time.sleep(0.2)
    except subprocess.CalledProcessError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if redis is not None:
            redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
