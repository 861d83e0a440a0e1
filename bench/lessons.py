"""Lesson pages on daphne next to the same bytes served as a static file by the same stack (wrk).

Issue "Course site": lesson throughput should be at least half of the static file's.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from dataclasses import dataclass

from .common import Browser, Report, Skip, Stack, Target, fmt, machine_line, which

THREADS = 1
CONNECTIONS = 16
# Rows run in turn, round after round: on a shared machine, a swing in load then hits every
# row alike instead of the one that happened to run during it.
ROUNDS = 6
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


def _combined(results: list[WrkResult]) -> WrkResult:
    """One row from several runs of the same length."""
    return WrkResult(
        rps=statistics.fmean(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        raw="\n".join(r.raw for r in results),
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


# The rows of the table, in the order they run. The target compares the lessons with the
# first: the "same HTML bytes as a static file" on this site's own static path.
STATIC = "static file, WhiteNoise (site's static path)"
RAW = "raw ASGI, no framework (reference)"
FIRST_VISIT = "lesson, first visit (no cookie)"
RETURNING = "lesson, returning learner (cookie)"


def run(quick: bool) -> Report:
    report = Report("lessons", "Lesson page vs the same bytes as a static file (daphne, wrk)")
    if which("wrk") is None:
        raise Skip("wrk is not installed: apt-get install wrk (the Debian package)")
    seconds, warmup = (2, 1) if quick else (3, 2)
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

        # The primary baseline: the same daphne and Django ASGI app (bench.settings: the
        # test settings plus one static directory) serving the lesson's bytes as a static
        # file through WhiteNoise, as the site serves its CSS.
        static_dir = stack.tmp / "static"
        static_dir.mkdir()
        (static_dir / f"bench-{slug}.html").write_bytes(page.body)
        static_path = f"/static/bench-{slug}.html"
        static_env = {
            **env,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "BENCH_STATIC_DIR": str(static_dir),
        }
        static = stack.daphne(static_env, "config.asgi:application", "static")
        # A second reference: daphne with a ten-line ASGI app and no framework at all.
        raw_env = {
            **env,
            "BENCH_STATIC_FILE": str(static_dir / f"bench-{slug}.html"),
            "BENCH_STATIC_TYPE": page.headers.get("Content-Type", "text/html; charset=utf-8"),
        }
        raw = stack.daphne(raw_env, "bench.static_app:app", "raw")
        for server, server_path in ((static, static_path), (raw, path)):
            check = Browser(server.url).request(server_path)
            if check.status != 200 or check.body != page.body:
                raise RuntimeError(
                    f"{server.url}{server_path} does not serve the saved lesson bytes "
                    f"(status {check.status}, {len(check.body):,} bytes)"
                )

        runs = [
            (STATIC, static.url + static_path, []),
            (RAW, raw.url + path, []),
            (FIRST_VISIT, site.url + path, []),
            (RETURNING, site.url + path, [f"Cookie: {cookie}"]),
        ]
        rounds = 1 if quick else ROUNDS
        samples: dict[str, list[WrkResult]] = {label: [] for label, _, _ in runs}
        for _, url, headers in runs:
            wrk(url, warmup, headers)
        for _ in range(rounds):
            for label, url, headers in runs:
                samples[label].append(wrk(url, seconds, headers))

    # Every run lasts as long: the mean of the rounds' req/s is all requests over all time.
    results = {label: _combined(runs_of_row) for label, runs_of_row in samples.items()}
    static_rps, raw_rps = results[STATIC].rps, results[RAW].rps

    def ratio(rps: float, base: float) -> float:
        return rps / base if base else float("nan")

    report.say(f"{machine_line()}")
    report.say(
        f"GET {path} ({len(page.body):,} bytes), wrk -t{THREADS} -c{CONNECTIONS} -d{seconds}s "
        f"--latency after a {warmup}s warm-up, {rounds} round(s) of the rows in turn; "
        "config.settings.test (DEBUG off), embedded Redis"
    )
    report.say(
        f"static file: the same bytes at {static_path}, WhiteNoise in the same Django ASGI app "
        "(bench.settings); raw ASGI: bench.static_app, no Django"
    )
    report.say()
    rows = []
    for label, r in results.items():
        rows.append(
            [
                label,
                r.rps,
                r.p50_ms,
                r.p99_ms,
                r.requests,
                r.errors,
                f"{ratio(r.rps, static_rps):.2f}",
                f"{ratio(r.rps, raw_rps):.2f}",
            ]
        )
    report.table(
        ["server", "req/s", "p50 ms", "p99 ms", "requests", "errors", "vs static", "vs raw ASGI"],
        rows,
    )
    report.say(
        "req/s: mean over the rounds; p50/p99: median of the rounds' figures. "
        "vs static, round by round: "
        + "; ".join(
            f"{label.removeprefix('lesson, ')} "
            + " ".join(
                f"{ratio(r.rps, s.rps):.2f}"
                for r, s in zip(samples[label], samples[STATIC], strict=True)
            )
            for label in (FIRST_VISIT, RETURNING)
        )
    )
    for label in (FIRST_VISIT, RETURNING):
        r = results[label]
        measured = ratio(r.rps, static_rps)
        report.targets.append(
            Target(
                name=f"{label}: throughput / static file's (WhiteNoise)",
                goal=f">= {GOAL_RATIO}",
                measured=f"{measured:.2f} ({fmt(r.rps)} / {fmt(static_rps)} req/s)"
                + (f", {r.errors} errors" if r.errors else "")
                + f"; vs raw ASGI {ratio(r.rps, raw_rps):.2f}",
                # Errors served fast would flatter the ratio: a run with errors misses.
                met=None if not static_rps else measured >= GOAL_RATIO and not r.errors,
            )
        )
    return report
