"""Settings shared by every environment. Environment files (dev, test, prod) import this.

The web tier keeps no state of its own: sessions, cache and the Channels layer all live
in Redis (REDIS_URL), so any web process can serve any request.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent
CONTENT_DIR = Path(os.environ.get("CONTENT_DIR", BASE_DIR / "content"))
# A lesson body's render is stopped after this long (see course.markdown_process).
LESSON_RENDER_SECONDS = 10.0

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = False
ALLOWED_HOSTS: list[str] = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "csp",
    "course",
    "playground",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside the session middleware, so that the 503 page of a Redis outage has it too.
    "django_permissions_policy.PermissionsPolicyMiddleware",
    # Static files from the web process itself (daphne serves no files of its own).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "")

CACHES: dict[str, dict[str, Any]] = {
    "default": {
        # django-redis: one connection pool per process and server, shared by every request.
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "course",
        # Every request reads or writes its session here: a hung Redis must fail the request
        # (a 503 page, config.views) rather than hold it open forever.
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}
SESSION_ENGINE = "config.sessions"  # cache sessions on Redis; see config/sessions.py
SESSION_COOKIE_AGE = 60 * 60 * 24 * 30
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
# The course is written in English only. Without the translation machinery, templates skip
# a language lookup for every number and URL they print (a fifth of the home page's CPU).
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# The course uses no device, sensor or payment API: every page denies them all, to itself
# and to anything it might embed (django-permissions-policy sets the header).
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "autoplay",
        "camera",
        "display-capture",
        "encrypted-media",
        "fullscreen",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "publickey-credentials-get",
        "screen-wake-lock",
        "usb",
        "xr-spatial-tracking",
    )
}

# A strict CSP: our own origin only, no inline script, no eval, no third-party origins.
# Pages that draw Mermaid diagrams relax style-src for inline <style> in the SVG
# (see course.views); script-src is never relaxed.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redis_outage": {"()": "config.views.RedisOutageLogFilter"},
        "redis_outage_task": {"()": "config.views.RedisOutageTaskLogFilter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "daphne": {"level": "WARNING"},
        # A request failed by a Redis outage logs one line, not a traceback (config.views).
        "django.request": {"filters": ["redis_outage"]},
        # And so does a background task that an outage ended (channels-redis's cleaners).
        "asyncio": {"filters": ["redis_outage_task"]},
    },
}

# The playground's lab hosts (`manage.py runlabs`, playground.labhost): the stateful
# processes, any number of them. The web tier places labs on the live hosts of this fleet
# (a set in Redis that each host joins). See docs/playground-contract.md.
PLAYGROUND_FLEET = os.environ.get("PLAYGROUND_FLEET", "main")
# How long a saved lab run (its permalink, playground.models.LabRun) is kept, in days;
# `manage.py pruneruns` deletes the expired ones (saving a run also does).
PLAYGROUND_RUN_DAYS = int(os.environ.get("PLAYGROUND_RUN_DAYS", "30"))

# The site's absolute address as learners type it, scheme://host[:port] with no trailing
# slash (e.g. https://course.example.com), for links shown to be typed on another device
# (a lab's watch link). `make run` with HOST=0.0.0.0 sets it to its first LAN address.
# Empty: unknown; build links from the request (request.build_absolute_uri).
PLAYGROUND_PUBLIC_URL = os.environ.get("PLAYGROUND_PUBLIC_URL", "").strip().rstrip("/")


def _networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [
            ipaddress.ip_network(entry.strip(), strict=False)
            for entry in os.environ.get(name, "").split(",")
            if entry.strip()
        ]
    except ValueError as exc:
        # A clear one-line error instead of a traceback from deep inside Django's setup.
        sys.exit(f"settings: {name}: {exc} (addresses or networks, comma-separated)")


# The reverse proxies in front of the web processes (HAProxy, nginx): X-Forwarded-For is
# believed only from these peers, e.g. TRUSTED_PROXIES=127.0.0.1,10.0.0.0/24. Empty: the
# client is the connection's peer, whatever headers it sends.
TRUSTED_PROXIES = _networks("TRUSTED_PROXIES")
# Limits: the host's own defaults (playground/labhost/limits.py), overridable here.
