"""Websocket routes. The run channel (``ws/runs/<id>/``) and the inbox (``ws/inbox/``)
are added by the engine and inbox issues."""

from __future__ import annotations

websocket_urlpatterns: list = []
