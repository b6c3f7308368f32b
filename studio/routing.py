"""Websocket routes: the run channel here; the inbox adds ``ws/inbox/``."""

from __future__ import annotations

from django.urls import path

from flows.consumers import RunConsumer
from studio.inbox.routing import websocket_urlpatterns as inbox_routes

websocket_urlpatterns: list = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    *inbox_routes,
]
