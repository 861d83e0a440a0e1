"""Local development and `make run`: an insecure fixed key, DEBUG only when asked for.

`make run` serves with DEBUG off (the site's own 404, 500 and 503 pages; a Redis outage
answers 503, never a traceback page); `DEBUG=1 make run` turns Django's debug pages on.
Reads the environment, starts nothing. REDIS_URL comes from whoever starts the site:
`make run` (config/serve.py) starts an embedded Redis and passes its URL to its children.
Commands that need no Redis (`check`, `migrate`, `createsuperuser`, `check_content`) run
without it.
"""

import os

from config.lan import is_wildcard, url_host

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS

DEBUG = os.environ.get("DEBUG", "") == "1"
SECRET_KEY = "dev-insecure-key-do-not-use-in-production"
# Loopback, plus the address `make run` serves on when HOST names one; with HOST=0.0.0.0 (a
# classroom), the machine's LAN addresses, which the launcher finds and passes in
# LAN_ADDRESSES (config/lan.py). The socket's origin check follows ALLOWED_HOSTS.
_HOST = os.environ.get("HOST", "")
_SERVED = [url_host(_HOST)] if _HOST and not is_wildcard(_HOST) else []
_LAN = [url_host(a.strip()) for a in os.environ.get("LAN_ADDRESSES", "").split(",") if a.strip()]
ALLOWED_HOSTS = [*ALLOWED_HOSTS, *_SERVED, *_LAN]
# Static files straight from the source tree, DEBUG or not: no collectstatic step.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # type: ignore[assignment]
