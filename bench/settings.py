"""Settings of the benchmarks that need more than the site's test settings. Never used by
the site.

- lessons: one more static directory, BENCH_STATIC_DIR, served by the site's own static
  path. Static files reach WhiteNoise through the staticfiles finders
  (WHITENOISE_USE_FINDERS in the test settings), so a file in that directory is served at
  /static/<its name> exactly as the site's CSS is: daphne, Django's ASGI handler,
  SecurityMiddleware, WhiteNoise.
- watchers: a class of 200 opens the watch link from one address (127.0.0.1) within a
  minute, more watch-code lookups than the site allows an address (120 a minute).
"""

import os
from pathlib import Path

from config.settings.test import *  # noqa: F403
from config.settings.test import STATICFILES_DIRS

if os.environ.get("BENCH_STATIC_DIR"):
    STATICFILES_DIRS = [*STATICFILES_DIRS, Path(os.environ["BENCH_STATIC_DIR"])]
PLAYGROUND_WATCH_LOOKUPS = {"per_window": 2000, "window": 60.0}
