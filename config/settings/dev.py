"""Local development and `make run`: an insecure fixed key, DEBUG only when asked for.

`make run` serves with DEBUG off (the site's own 404, 500 and 503 pages; a Redis outage
answers 503, never a traceback page); `DEBUG=1 make run` turns Django's debug pages on.
Reads the environment, starts nothing. REDIS_URL comes from whoever starts the site:
`make run` (config/serve.py) starts an embedded Redis and passes its URL to its children.
Commands that need no Redis (`check`, `migrate`, `createsuperuser`, `check_content`) run
without it.
"""

import os

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS

DEBUG = os.environ.get("DEBUG", "") == "1"
SECRET_KEY = "dev-insecure-key-do-not-use-in-production"
# Loopback, plus the address `make run` serves on when HOST names another one.
ALLOWED_HOSTS = [*ALLOWED_HOSTS, *filter(None, [os.environ.get("HOST", "")])]
# Static files straight from the source tree, DEBUG or not: no collectstatic step.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # type: ignore[assignment]
