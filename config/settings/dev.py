"""Local development: DEBUG on, an insecure fixed key. Reads the environment, starts nothing.

REDIS_URL comes from whoever starts the site: `make run` (config/serve.py) starts an
embedded Redis and passes its URL to its children. Commands that need no Redis
(`check`, `migrate`, `createsuperuser`, `check_content`) run without it.
"""

from .base import *  # noqa: F403

DEBUG = True
SECRET_KEY = "dev-insecure-key-do-not-use-in-production"
# Static files straight from the source tree: no collectstatic step in development.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # type: ignore[assignment]
