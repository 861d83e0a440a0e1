"""Test settings: a real Redis server of the run's own (embedded when REDIS_URL is unset)."""

from config.embedded_redis import ensure_redis_url

from .base import *  # noqa: F403
from .base import CACHES, CHANNEL_LAYERS

DEBUG = False
SECRET_KEY = "test-key-not-secret"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The live server serves static files straight from the source tree (no collectstatic, so
# no STATIC_ROOT for WhiteNoise to look in).
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # type: ignore[assignment]

# Started once per test process, stopped at exit, killed with the process if it dies.
REDIS_URL = ensure_redis_url()
CACHES["default"]["LOCATION"] = REDIS_URL
CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [REDIS_URL]
