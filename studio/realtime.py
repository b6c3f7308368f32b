"""Live events to websocket groups, sent from workers and views after their transaction commits.

Group names come from ``group_name`` only. Messages go straight to Redis with the channel
layer's own serializer and channel naming (RedisPubSubChannelLayer: one PUBLISH per group
message): calling the layer through ``async_to_sync`` from sync code would spin up an event
loop and a new Redis connection for every event.

Each message travels as the JSON text its sockets will send (``frame``), encoded once here
rather than once per socket by every consumer of the group (``GroupConsumer.forward``).
"""

from __future__ import annotations

import json
import logging
from functools import cache

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

log = logging.getLogger(__name__)

_PREFIX = "asgi"  # RedisPubSubLoopLayer's default prefix


def group_name(kind: str, key: int | str) -> str:
    """The one naming rule for groups: ``run.42``, ``inbox.7`` (tenant id)."""
    return f"{kind}.{key}"


def redis_channel(group: str) -> str:
    """The Redis channel RedisPubSubChannelLayer uses for ``group``."""
    return f"{_PREFIX}__group__{group}"


@cache
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def publish(group: str, message: dict) -> None:
    """Send ``message`` (with a ``type`` naming the consumer handler) to every socket in ``group``.

    Live events are a convenience: clients catch up from the API on reconnect, so a failure
    here is logged, never raised into the business transaction that caused it."""
    layer = get_channel_layer()
    try:
        _client().publish(redis_channel(group), layer.serialize(frame(message)))
    except redis.RedisError as exc:
        log.warning("live event to %s not sent: %s", group, exc)


def frame(message: dict) -> dict:
    """The channel-layer message for ``message``: its handler type and its JSON, encoded once."""
    return {"type": message["type"], "text": json.dumps(message, cls=DjangoJSONEncoder)}


def publish_on_commit(group: str, message: dict) -> None:
    transaction.on_commit(lambda: publish(group, message))


class GroupListener:
    """A blocking listener on one group's events, for sync code that waits (``?wait=`` calls).

    Subscribe *before* checking the state you wait for, then ask for the ``next_event()``:
    nothing that happens in between is missed."""

    def __init__(self, group: str) -> None:
        self._pubsub = _client().pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(redis_channel(group))

    def next_event(self, timeout: float) -> dict | None:
        """The next event within ``timeout`` seconds (what its sockets receive), or None."""
        try:
            message = self._pubsub.get_message(timeout=max(0.0, timeout))
        except redis.RedisError:
            return None
        if message is None:
            return None
        sent = get_channel_layer().deserialize(message["data"])
        return json.loads(sent["text"]) if "text" in sent else sent

    def close(self) -> None:
        self._pubsub.close()

    def __enter__(self) -> GroupListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
