"""Inbox websocket routes (ws/inbox/)."""

from __future__ import annotations

from django.urls import path

from studio.inbox.consumers import InboxConsumer

websocket_urlpatterns: list = [
    path("ws/inbox/", InboxConsumer.as_asgi()),
]
