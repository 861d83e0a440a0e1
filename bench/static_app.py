"""The lessons benchmark's reference row: daphne serving one file's bytes, with no app work.

`daphne bench.static_app:app` answers every HTTP request with the bytes of the file named
by BENCH_STATIC_FILE (a lesson page saved by the benchmark), read once. Same server, same
bytes, same loopback, no framework: the ceiling of daphne itself, shown next to the
primary baseline (the site's own static path, bench.settings). Never used by the site.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ.get("BENCH_STATIC_FILE", "/dev/null")).read_bytes()
HEADERS = [
    (b"content-type", os.environ.get("BENCH_STATIC_TYPE", "text/html; charset=utf-8").encode()),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
