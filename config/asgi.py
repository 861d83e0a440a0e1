"""ASGI entry point: HTTP through Django, WebSockets through Channels' routing."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
# What django.core.asgi.get_asgi_application does, with the site's own handler class.
django.setup(set_prefix=False)

from config.handler import OneHopASGIHandler  # noqa: E402

django_asgi_app = OneHopASGIHandler()

from course.snapshot import course_snapshot_warm  # noqa: E402

# Before daphne listens: a cold first page renders every lesson, and meanwhile the proxy's
# health check waits behind it (see course_snapshot_warm).
course_snapshot_warm()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from config.websocket_origin import SameOriginValidator  # noqa: E402
from playground.routing import websocket_urlpatterns  # noqa: E402
from playground.socket_outage import RedisOutageClose  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Scheme, host and port of the origin, as Django's CSRF check (not channels'
        # AllowedHostsOriginValidator, which ignores scheme and port); a Redis outage
        # closes a socket with 4503 and a message.
        "websocket": RedisOutageClose(
            SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
