"""Bench-only ASGI application for ``bench inbox``: the studio's, plus a plain Channels consumer.

``RawChannelsConsumer`` is the baseline: a consumer as the Channels documentation writes one
(join a group on connect, ``send_json`` each group event), served by the same uvicorn process,
behind the same origin check and session middleware as ``ws/inbox/``. ``bench inbox`` serves
this module instead of ``studio.asgi``; the product never routes the raw consumer.
"""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import ProtocolTypeRouter
from django.urls import path

from studio.asgi import django_asgi_app, websocket_stack
from studio.routing import websocket_urlpatterns

RAW_PATH = "ws/bench/raw/<str:group>/"


class RawChannelsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        self.group = self.scope["url_route"]["kwargs"]["group"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "inbox.ready"})

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def raw_event(self, event: dict) -> None:
        await self.send_json(event)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_stack([path(RAW_PATH, RawChannelsConsumer.as_asgi()), *websocket_urlpatterns]),
    }
)
