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
import os
import threading
import time
from functools import cache

import redis
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from studio import jsontext

log = logging.getLogger(__name__)

_PREFIX = "asgi"  # RedisPubSubLoopLayer's default prefix


def group_name(kind: str, key: int | str) -> str:
    """The one naming rule for groups: ``run.42``, ``inbox.7`` (tenant id)."""
    return f"{kind}.{key}"


def redis_channel(group: str) -> str:
    """The Redis channel RedisPubSubChannelLayer uses for ``group``."""
    return f"{_PREFIX}__group__{group}"


@cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def publish(group: str, message: dict) -> None:
    """Send ``message`` (with a ``type`` naming the consumer handler) to every socket in ``group``.

    Live events are a convenience: clients catch up from the API on reconnect, so a failure
    here is logged, never raised into the business transaction that caused it. Nothing waits
    for Redis to answer (``_Publisher``)."""
    data = get_channel_layer().serialize(frame(message))
    try:
        _publisher.publish(redis_channel(group), data)
    except (redis.RedisError, OSError) as exc:
        log.warning("live event to %s not sent: %s", group, exc)


def send_unanswered(*commands: tuple) -> None:
    """Redis commands whose answers nobody reads (``HINCRBY`` of counters), on the connection
    live events use: a socket write, no round trip. Like events, a failure is logged."""
    try:
        _publisher.send(*commands)
    except (redis.RedisError, OSError) as exc:
        log.warning("counters not sent: %s", exc)


class _Publisher:
    """PUBLISH without a round trip: one connection per process on which Redis sends no replies
    (``CLIENT REPLY OFF``, sent again on every reconnect), so an event costs a socket write
    (about 11 µs here) instead of a wait for the subscriber count nobody reads (about 70 µs, more
    in a busy worker). A dropped connection raises once and is opened again by the next event;
    a forked child opens its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: redis.connection.AbstractConnection | None = None
        self._pid = 0

    def publish(self, channel: str, data: bytes) -> None:
        with self._lock:
            self._open().send_command("PUBLISH", channel, data, check_health=False)

    def _open(self) -> redis.connection.AbstractConnection:
        if self._connection is None or self._pid != os.getpid():
            pool = redis_client().connection_pool
            self._connection = pool.connection_class(**pool.connection_kwargs)
            self._connection.register_connect_callback(self._replies_off)
            self._pid = os.getpid()
        return self._connection

    def send(self, *commands: tuple) -> None:
        """Other commands whose answers nobody reads (counters), in one write."""
        with self._lock:
            connection = self._open()
            connection.send_packed_command(connection.pack_commands(commands), check_health=False)

    def _replies_off(self, connection: redis.connection.AbstractConnection) -> None:
        connection.send_command("CLIENT", "REPLY", "OFF", check_health=False)


_publisher = _Publisher()


def frame(message: dict) -> dict:
    """The channel-layer message for ``message``: its handler type and its JSON, encoded once."""
    return {"type": message["type"], "text": jsontext.dumps(message)}


def publish_on_commit(group: str, message: dict) -> None:
    transaction.on_commit(lambda: publish(group, message))


class GroupListener:
    """A blocking listener on one group's events, for sync code that waits (``?wait=`` calls).

    Subscribe *before* checking the state you wait for, then ask for the ``next_event()``:
    nothing that happens in between is missed.

    Listeners reuse idle subscriber connections (``_IdleSubscribers``): closing a redis-py
    PubSub disconnects its connection and hands it back to the pool that ``publish`` draws from,
    so every wait used to cost a new Redis connection for someone."""

    def __init__(self, group: str) -> None:
        self._channel = redis_channel(group).encode()
        self._pubsub = _idle.take() or redis_client().pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(self._channel)

    def next_event(self, timeout: float) -> dict | None:
        """The next event within ``timeout`` seconds (what its sockets receive), or None."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            try:
                # None once the time is up, or sooner when it read a (un)subscribe confirmation.
                message = self._pubsub.get_message(timeout=max(0.0, remaining))
            except redis.RedisError:
                return None
            if message is None:
                if remaining <= 0:
                    return None
                continue
            if message["channel"] == self._channel:  # not a late one for the connection's last group
                sent = get_channel_layer().deserialize(message["data"])
                return json.loads(sent["text"])  # every event is a ``frame``

    def close(self) -> None:
        try:
            self._pubsub.unsubscribe(self._channel)
        except redis.RedisError:
            self._pubsub.close()
            return
        _idle.give(self._pubsub)

    def __enter__(self) -> GroupListener:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _IdleSubscribers:
    """Subscriber connections between two waits, at most ``limit``, never shared across a fork."""

    def __init__(self, limit: int = 32) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: list[redis.client.PubSub] = []

    def take(self) -> redis.client.PubSub | None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child: those sockets are the parent's
                self._pid, self._idle = os.getpid(), []
            return self._idle.pop() if self._idle else None

    def give(self, pubsub: redis.client.PubSub) -> None:
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < self.limit:
                self._idle.append(pubsub)
                return
        pubsub.close()


_idle = _IdleSubscribers()
