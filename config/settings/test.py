"""Test settings. Reads the environment, starts nothing: REDIS_URL is the test run's own
Redis, which tests/redis_server.py (a pytest plugin) starts before Django reads this file."""

from .base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-key-not-secret"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The live server serves static files straight from the source tree (no collectstatic, so
# no STATIC_ROOT for WhiteNoise to look in).
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None  # type: ignore[assignment]
