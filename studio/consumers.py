"""What every websocket of the studio shares: one group per socket, a ping, clean leave."""

from __future__ import annotations

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class GroupConsumer(AsyncJsonWebsocketConsumer):
    """A socket that follows one group (``self.group``, set when it joins); ``receive_json``
    only answers pings: clients read through the API and listen here.

    Subclasses name their group events' handler ``forward`` (``run_update = GroupConsumer.forward``)."""

    group: str

    async def dispatch(self, message: dict) -> None:
        """Group events go straight to ``forward``. Channels' own dispatch first closes stale
        database connections on its database thread, for every message to every socket: one
        thread hop each, serialised, about a third of a 200-socket fan-out's time on the server
        (py-spy, ``bench inbox``). ``forward`` touches no database, so there is nothing to close;
        everything else (connect, receive, disconnect) keeps Channels' dispatch."""
        handler = getattr(self, get_handler_name(message), None)
        if getattr(handler, "__func__", None) is GroupConsumer.forward:
            await handler(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def forward(self, event: dict) -> None:
        """Send a group event as it came: encoded once by ``studio.realtime.frame``, the same
        text for every socket."""
        await self.send(text_data=event["text"])

    async def receive_json(self, content, **kwargs) -> None:
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})
