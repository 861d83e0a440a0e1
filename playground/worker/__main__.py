"""`python -m playground.worker`: the flags are in `life.parse_args`. With `--pooled
--parent-pid N` first, a warm worker: imported, then idle until the lab host hands it those
flags on stdin (`life.claimed_argv`, playground.lab.process.WorkerPool)."""

import asyncio
import sys

from .life import claimed_argv, main, parse_args

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--pooled"]:
        argv = claimed_argv(argv[1:])
    sys.exit(asyncio.run(main(parse_args(argv))))
