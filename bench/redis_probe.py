"""Raw Redis round trips with redis-py: a GET then a SET EX of a session-sized value.

That pair is what a stateless worker adds to a request (load the session, save it). Run
as `python -m bench.redis_probe --url ... --seconds N --rate R` it is a paced probe in a
process of its own (so it shares no GIL with the labs it runs beside): it connects, says
"ready", starts when a line arrives on stdin, and prints the pair times in ms as a JSON
list. Keys are bench:probe:*, deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import redis

KEYS = 12  # like the 12 users of a lab
VALUE = json.dumps(
    {
        "user": "user-07",
        "cart": ["sku-12", "sku-31", "sku-4"],
        "visits": 17,
        "created": 1732800000.0,
        "worker": "worker-2",
        "pad": "x" * 64,
    }
)


def pairs(
    client: redis.Redis,
    *,
    count: int | None = None,
    seconds: float | None = None,
    rate: float | None = None,
) -> list[float]:
    """Time GET+SET pairs (ms): `count` of them back to back, or for `seconds` at `rate`/s."""
    samples: list[float] = []
    interval = 1.0 / rate if rate else 0.0
    start = next_at = time.perf_counter()
    i = 0
    while True:
        now = time.perf_counter()
        if count is not None and i >= count:
            break
        if seconds is not None and now - start >= seconds:
            break
        if now < next_at:
            time.sleep(next_at - now)
        key = f"bench:probe:{i % KEYS}"
        t0 = time.perf_counter()
        client.get(key)
        client.set(key, VALUE, ex=60)
        samples.append((time.perf_counter() - t0) * 1000)
        i += 1
        next_at += interval
    client.delete(*(f"bench:probe:{k}" for k in range(KEYS)))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--rate", type=float, default=100.0)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.url, socket_timeout=5)
    client.ping()  # connect before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(pairs(client, seconds=args.seconds, rate=args.rate)))
    client.close()


if __name__ == "__main__":
    main()
