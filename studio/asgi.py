"""ASGI entry point: Django for HTTP, Channels for websockets (routes added by the apps)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import import_module

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
django.setup(set_prefix=False)  # must run before importing consumers (app registry)

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from studio.heap import freeze_startup_objects  # noqa: E402
from studio.routing import websocket_urlpatterns  # noqa: E402


class RequestThread(ThreadPoolExecutor):
    """One thread for one request at a time, that knows whether it still has work."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._lock = threading.Lock()
        self.pending = 0

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            self.pending += 1

        def run():
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self.pending -= 1

        return super().submit(run)


class RequestThreads:
    """Threads kept between requests. Django runs each request's synchronous code (its signals,
    middleware and view) on a thread of its own, which asgiref starts for the request and joins
    after it: on a busy event loop, a thread's start and join cost more than the work of a small
    API call's thread hops. A thread still working when its request ended (a client that left
    while its view waits) is let go, never handed to the next request."""

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._idle: list[RequestThread] = []
        self._lock = threading.Lock()

    def take(self) -> RequestThread:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return RequestThread()

    def give(self, thread: RequestThread) -> None:
        with self._lock:
            if thread.pending == 0 and len(self._idle) < self.limit:
                self._idle.append(thread)
                return
        thread.shutdown(wait=False)  # it ends once its work is done


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
        self.threads = RequestThreads()

    async def __call__(self, scope, receive, send):
        """Django's, with the request's thread taken from ``RequestThreads``."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self.threads.take()
        try:
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give(thread)

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


django_asgi_app = SyncChainASGIHandler()


def websocket_stack(patterns: list):
    """What every websocket of the studio goes through: origin check, session auth, routing."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(patterns)))


application = ProtocolTypeRouter(
    {"http": django_asgi_app, "websocket": websocket_stack(websocket_urlpatterns)}
)

import_module(settings.ROOT_URLCONF)  # the views, imported now rather than by the first request
freeze_startup_objects()
