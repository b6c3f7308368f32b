"""ASGI entry point: Django for HTTP, Channels for websockets (routes added by the apps)."""

from __future__ import annotations

import os

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django.setup(set_prefix=False)  # must run before importing consumers (app registry)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from studio.routing import websocket_urlpatterns  # noqa: E402


class SyncChainASGIHandler(ASGIHandler):
    """Django's ASGI handler, with the middleware chain and the views run in one step on the
    request's thread.

    The studio's middleware and views are all synchronous. Django's own handler builds the chain
    for async: each ``MiddlewareMixin`` then runs its ``process_request`` and ``process_response``
    through ``sync_to_async``, and every sync-only middleware turns back with ``async_to_sync``,
    so a request crossed between the event loop and its thread about ten times (half of the web
    server's CPU for a run started with ``?wait``, py-spy). Here the chain is built for sync code,
    as under WSGI, and entered once; reading the body, the request signals, sending the response
    and noticing a client that went away stay Django's asynchronous code."""

    def __init__(self) -> None:
        self.load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


django_asgi_app = SyncChainASGIHandler()


def websocket_stack(patterns: list):
    """What every websocket of the studio goes through: origin check, session auth, routing."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(patterns)))


application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": websocket_stack(websocket_urlpatterns)}
)
