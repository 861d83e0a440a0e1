"""Settings of the lessons benchmark's baseline: the site's test settings plus one more
static directory, BENCH_STATIC_DIR, served by the site's own static path.

Static files reach WhiteNoise through the staticfiles finders (WHITENOISE_USE_FINDERS in
the test settings), so a file in that directory is served at /static/<its name> exactly
as the site's CSS is: daphne, Django's ASGI handler, SecurityMiddleware, WhiteNoise.
Never used by the site.
"""

import os
from pathlib import Path

from config.settings.test import *  # noqa: F403
from config.settings.test import STATICFILES_DIRS

STATICFILES_DIRS = [*STATICFILES_DIRS, Path(os.environ["BENCH_STATIC_DIR"])]
