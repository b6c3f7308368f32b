"""ASGI entry point: Django for HTTP, Channels for websockets (routes added by the apps)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django_asgi_app = get_asgi_application()  # must run before importing consumers (app registry)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from studio.routing import websocket_urlpatterns  # noqa: E402


def websocket_stack(patterns: list):
    """What every websocket of the studio goes through: origin check, session auth, routing."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(patterns)))


application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": websocket_stack(websocket_urlpatterns)}
)
