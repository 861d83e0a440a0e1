"""Lesson pages on daphne next to daphne serving the same bytes as a static file (wrk).

Issue "Course site": lesson throughput should be at least half of the static file's.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from .common import Browser, Report, Skip, Stack, Target, fmt, machine_line, which

THREADS = 1
CONNECTIONS = 16
GOAL_RATIO = 0.5
LESSON_LINK = re.compile(r'href="/lessons/([a-z0-9][a-z0-9-]*)/"')
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors (connect, read, write, timeout) and non-2xx/3xx answers
    raw: str


def parse_wrk(output: str) -> WrkResult:
    """Requests/sec, the 50% and 99% lines of --latency, and every kind of error."""

    def latency(pct: str) -> float:
        match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
        if match is None:
            raise ValueError(f"no {pct}% line in wrk's output (was --latency given?)")
        return float(match.group(1)) * UNITS[match.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    if rps is None or total is None:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    errors = 0
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        requests=int(total.group(1)),
        errors=errors,
        raw=output,
    )


def wrk(url: str, seconds: int, headers: list[str]) -> WrkResult:
    args = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    for header in headers:
        args += ["-H", header]
    done = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def run(quick: bool) -> Report:
    report = Report("lessons", "Lesson page vs the same bytes as a static file (daphne, wrk)")
    if which("wrk") is None:
        raise Skip("wrk is not installed: apt-get install wrk (the Debian package)")
    seconds, warmup = (2, 1) if quick else (5, 2)
    with Stack("bench-lessons-") as stack:
        redis = stack.redis()
        env = stack.site_env(redis.url)
        site = stack.daphne(env, "config.asgi:application", "site")

        home = Browser(site.url).request("/")
        slugs = LESSON_LINK.findall(home.text) if home.status == 200 else []
        if not slugs:
            raise Skip(f"the course home page lists no lessons (GET / answered {home.status})")
        slug = slugs[0]
        path = f"/lessons/{slug}/"
        learner = Browser(site.url)
        page = learner.request(path)
        if page.status != 200:
            raise Skip(f"GET {path} answered {page.status}")
        cookie = learner.cookie_header()
        # A returning learner: the second view only reads the session (progress unchanged).
        learner.request(path)

        saved = stack.tmp / "lesson.html"
        saved.write_bytes(page.body)
        static_env = {
            **env,
            "BENCH_STATIC_FILE": str(saved),
            "BENCH_STATIC_TYPE": page.headers.get("Content-Type", "text/html; charset=utf-8"),
        }
        static = stack.daphne(static_env, "bench.static_app:app", "static")
        check = Browser(static.url).request(path)
        if check.body != page.body:
            raise RuntimeError("the static server does not serve the saved lesson bytes")

        runs = [
            ("static file, same bytes", static.url + path, []),
            ("lesson, first visit (no cookie)", site.url + path, []),
            ("lesson, returning learner (cookie)", site.url + path, [f"Cookie: {cookie}"]),
        ]
        results: dict[str, WrkResult] = {}
        for label, url, headers in runs:
            wrk(url, warmup, headers)
            results[label] = wrk(url, seconds, headers)

    static_rps = results["static file, same bytes"].rps
    report.say(f"{machine_line()}")
    report.say(
        f"GET {path} ({len(page.body):,} bytes), wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s "
        f"--latency after a {warmup}s warm-up; config.settings.test (DEBUG off), embedded Redis"
    )
    report.say()
    rows = []
    for label, r in results.items():
        ratio = r.rps / static_rps if static_rps else float("nan")
        rows.append([label, r.rps, r.p50_ms, r.p99_ms, r.requests, r.errors, f"{ratio:.2f}"])
    report.table(["server", "req/s", "p50 ms", "p99 ms", "requests", "errors", "vs static"], rows)
    for label in ("lesson, first visit (no cookie)", "lesson, returning learner (cookie)"):
        r = results[label]
        ratio = r.rps / static_rps if static_rps else float("nan")
        report.targets.append(
            Target(
                name=f"{label}: throughput / static file's",
                goal=f">= {GOAL_RATIO}",
                measured=f"{ratio:.2f} ({fmt(r.rps)} / {fmt(static_rps)} req/s)"
                + (f", {r.errors} errors" if r.errors else ""),
                # Errors served fast would flatter the ratio: a run with errors misses.
                met=None if not static_rps else ratio >= GOAL_RATIO and not r.errors,
            )
        )
    return report
