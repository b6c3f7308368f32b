"""What every websocket of the studio shares: one group per socket, a ping, clean leave."""

from __future__ import annotations

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class GroupConsumer(AsyncJsonWebsocketConsumer):
    """A socket that follows one group (``self.group``, set when it joins); ``receive_json``
    only answers pings: clients read through the API and listen here."""

    group: str

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def forward(self, event: dict) -> None:
        """Send a group event as it came: already encoded by ``studio.realtime.frame`` (the same
        text for every socket), or a plain message sent with ``group_send`` (encoded here)."""
        if "text" in event:
            await self.send(text_data=event["text"])
        else:
            await self.send_json(event)

    async def receive_json(self, content, **kwargs) -> None:
        if content.get("type") == "ping":
            await self.send_json({"type": "pong"})
