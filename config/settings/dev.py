"""Local development: DEBUG on, an insecure fixed key. REDIS_URL comes from `make run`."""

from config.embedded_redis import ensure_redis_url

from .base import *  # noqa: F403
from .base import CACHES, CHANNEL_LAYERS

DEBUG = True
SECRET_KEY = "dev-insecure-key-do-not-use-in-production"  # noqa: S105
# Static files straight from the source tree: no collectstatic step in development.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # type: ignore[assignment]

REDIS_URL = ensure_redis_url()
CACHES["default"]["LOCATION"] = REDIS_URL
CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [REDIS_URL]
