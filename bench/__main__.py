"""`python -m bench [NAME ...] [--quick]`: run the benchmarks, print figures, record them.

Each benchmark prints its tables, then a summary lists every target of the issues and
whether this run met it. `hostile` is a check rather than a figure: any of its probes that
broke makes the run exit 1. The figures also go into docs/benchmarks.md (the block of each
benchmark that ran). Nothing here asserts on a timing: figures are for people to read.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import sys
import time
import traceback

from .common import Report, Skip, machine_line, table
from .docs import docs_update

# name -> (module, function, what it measures, hard time limit in seconds); run in order.
BENCHMARKS: dict[str, tuple[str, str, str, int]] = {
    "lessons": ("bench.lessons", "run", "lesson page vs static file throughput and latency", 180),
    "spawn": ("bench.workers", "run_spawn", "worker spawn-to-ready, both modes", 240),
    "memory": ("bench.workers", "run_memory", "USS/RSS per worker process, both modes", 150),
    "latency": (
        "bench.latency",
        "run",
        "stateless minus stateful latency vs Redis round trip",
        180,
    ),
    "scaling": (
        "bench.scaling",
        "run",
        "throughput at 1 to 6 workers under saturating load, and a lab's store",
        240,
    ),
    "kill": ("bench.kill", "run", "kill over a WebSocket to the worker shown down", 300),
    "chat": ("bench.chat", "run", "reconnect storm of 50 chat users, jitter off and on", 600),
    "start": ("bench.start", "run", "start lab to every worker shown up, both modes", 300),
    "labs": ("bench.labs", "run", "concurrent labs 1 and 2 hosts hold with update lag p95 ok", 600),
    "watchers": (
        "bench.watchers",
        "run",
        "200 watchers of one shared lab on 1 and 2 daphne: update lag, CPU",
        400,
    ),
    "proxy": (
        "bench.proxy",
        "run",
        "pages with 1 and 2 daphne behind HAProxy; daphne SIGKILL to socket live",
        400,
    ),
    # The limit grows with --soak-minutes (see main).
    "soak": ("bench.soak", "run", "lab host RSS growth over a soak at 200 req/s", 900),
    "hostile": ("bench.hostile", "run", "issue 13's attacks on make run; nothing may break", 180),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer samples")
    parser.add_argument(
        "--soak-minutes",
        type=float,
        default=None,
        metavar="M",
        help="length of the soak benchmark (default 10, with --quick 1)",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not write the results to docs/benchmarks.md"
    )
    args = parser.parse_args(argv)
    if args.soak_minutes is not None and not 0 < args.soak_minutes <= 120:
        parser.error("--soak-minutes must be more than 0 and at most 120")
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = [n for n in BENCHMARKS if n in args.names] if args.names else list(BENCHMARKS)

    print(f"bench: {', '.join(names)}{' (--quick)' if args.quick else ''}; {machine_line()}")
    reports: list[Report] = []
    failed = False
    for name in names:
        module_name, function, what, limit = BENCHMARKS[name]
        options = {}
        if name == "soak" and args.soak_minutes is not None:
            options["minutes"] = args.soak_minutes
            limit = max(limit, int(args.soak_minutes * 60) + 300)
        print(f"\n== {name}: {what} ==", flush=True)
        started = time.monotonic()
        # Last resort if a benchmark hangs past its own limits: print every thread's stack
        # and exit; the kernel then kills every child (they all die with their parent).
        faulthandler.dump_traceback_later(limit, exit=True)
        try:
            run = getattr(importlib.import_module(module_name), function)
            report: Report = run(args.quick, **options)
        except Skip as exc:
            print(f"skipped: {exc}", flush=True)
            report = Report(name, what, skipped=str(exc))
        except KeyboardInterrupt:
            print("interrupted; everything started has been stopped", flush=True)
            return 130
        except Exception as exc:
            traceback.print_exc()
            print(f"failed: {type(exc).__name__}: {exc}", flush=True)
            report = Report(name, what, skipped=f"failed: {type(exc).__name__}: {exc}")
            failed = True
        finally:
            faulthandler.cancel_dump_traceback_later()
        print(f"({name} took {time.monotonic() - started:.0f}s)", flush=True)
        if report.required and any(target.met is False for target in report.targets):
            failed = True
        reports.append(report)

    print("\n== summary ==")
    rows = []
    for report in reports:
        if report.skipped is not None:
            rows.append([report.name, "-", "-", report.skipped[:70], "skipped"])
        for target in report.targets:
            rows.append([report.name, target.name, target.goal, target.measured, target.verdict])
    print(table(["benchmark", "target", "goal", "measured", "verdict"], rows))

    if not args.no_docs:
        argv_shown = sys.argv[1:] if argv is None else argv
        path = docs_update(
            reports, command=" ".join(["python -m bench", *argv_shown]), names=list(BENCHMARKS)
        )
        print(f"\nresults written to {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
