"""`python -m playground.worker`: the flags are in `life.parse_args`."""

import asyncio
import sys

from .life import main, parse_args

if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
