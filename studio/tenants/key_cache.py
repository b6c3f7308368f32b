"""API keys found, kept per process while every change to keys and tenants reaches it.

Every API call authenticated by a key used to read the key and its tenant from PostgreSQL
first: a round trip of its own, about a third of a small memory search's whole call. Here a key
once found is kept by the process and used again without a query, on one condition: the process
is subscribed to ``CHANNEL``, on which every change to an API key or a tenant (a revocation, a
role, the tenant's settings, a deletion) is announced when it commits.

- The process that makes a change forgets its keys at once (before the commit, too, so its own
  next call reads again), and announces it after the commit; every other process forgets its
  keys when the announcement arrives (a fraction of a millisecond later).
- While the subscription is not live (not yet made, lost, Redis unreachable), nothing is kept
  and every call reads the database. Losing and regaining it forgets everything, so nothing
  announced meanwhile is missed.
- A key read while a change was being announced is not kept (``_epoch``), so an old row never
  outlives the announcement; and nothing is kept longer than ``MAX_AGE_S`` in any case.
- Unknown and revoked keys are never kept: a wrong key costs its query, as before.

Callers get fresh model instances from the row each time, never shared ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from datetime import datetime

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from studio.realtime import redis_client
from studio.tenants.models import ApiKey, Tenant
from studio.tenants.selectors import api_key_from_row, api_key_hash, api_key_row

log = logging.getLogger(__name__)

CHANNEL = "studio:api-keys:changed"
MAX_AGE_S = 60.0  # a backstop only: changes are announced
MAX_KEYS = 10_000
_RETRY_S = (0.05, 0.2, 1.0, 5.0)  # between attempts to subscribe again


class _Entry:
    __slots__ = ("at", "row", "used")

    def __init__(self, row: tuple, at: float) -> None:
        self.row, self.at = row, at
        self.used: datetime | None = None  # a use recorded since the row was read


_lock = threading.Lock()
_entries: dict[str, _Entry] = {}
_epoch = 0  # moves on every forgetting


def find_active(raw_key: str) -> ApiKey | None:
    """The unrevoked key with this raw value, its tenant loaded: kept or read (one query)."""
    key_hash = api_key_hash(raw_key)
    listener = _listener()
    live = listener.live
    if live:
        entry = _entries.get(key_hash)
        if entry is not None and time.monotonic() - entry.at < MAX_AGE_S:
            return _instance(entry)
    epoch = _epoch
    row = api_key_row(key_hash)
    if row is None:
        return None
    entry = _Entry(row, time.monotonic())
    if live:
        with _lock:
            if epoch == _epoch and listener.live:  # nothing changed while we read
                if len(_entries) >= MAX_KEYS:
                    _entries.clear()
                _entries[key_hash] = entry
    return _instance(entry)


def recorded_use(api_key: ApiKey) -> None:
    """The key's use was just recorded (``api_key_touch``): the kept row says so from now on."""
    entry = _entries.get(api_key.key_hash)
    if entry is not None:
        entry.used = api_key.last_used_at


def _instance(entry: _Entry) -> ApiKey:
    api_key = api_key_from_row(entry.row)
    if entry.used is not None and (api_key.last_used_at is None or entry.used > api_key.last_used_at):
        api_key.last_used_at = entry.used
    return api_key


def changed() -> None:
    """API keys or tenants are changing in the current transaction: forget this process's keys
    now, and tell every process once the change commits."""
    forget()
    transaction.on_commit(_announce)


def _on_save(sender, instance, created: bool = False, **kwargs) -> None:
    if not created:  # a new key or tenant is in no one's memory yet
        changed()


def _on_delete(sender, instance, **kwargs) -> None:
    changed()


def connect_signals() -> None:
    """Saves and deletes of keys and tenants through the ORM announce themselves; services that
    change them with an UPDATE of their own (revoking, settings) call ``changed``."""
    for model in (ApiKey, Tenant):
        post_save.connect(_on_save, sender=model, dispatch_uid=f"key_cache.save.{model.__name__}")
        post_delete.connect(_on_delete, sender=model, dispatch_uid=f"key_cache.delete.{model.__name__}")


def forget() -> None:
    global _epoch
    with _lock:
        _epoch += 1
        _entries.clear()


def _announce() -> None:
    forget()  # again: a call in between may have kept the row as it was before the commit
    try:
        redis_client().publish(CHANNEL, b"1")
    except (redis.RedisError, OSError) as exc:  # the others keep theirs at most MAX_AGE_S
        log.error("API key change not announced (other processes keep what they know for up to %ss): %s",
                  MAX_AGE_S, exc)  # fmt: skip


def _subscriber() -> redis.Redis:
    """A connection that may wait for announcements indefinitely (a PING now and then)."""
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=None, socket_keepalive=True,
        health_check_interval=30,
    )  # fmt: skip


class _Listener:
    """One thread per process, subscribed to ``CHANNEL``; ``live`` while its subscription is."""

    def __init__(self) -> None:
        self.live = False
        self.pid = os.getpid()

    def start(self) -> None:
        threading.Thread(target=self._run, name="api-key-changes", daemon=True).start()

    def _run(self) -> None:
        failures = 0
        while _listener_of_process is self:  # one that was replaced ends
            pubsub = None
            try:
                pubsub = _subscriber().pubsub()
                pubsub.subscribe(CHANNEL)
                while _listener_of_process is self:
                    message = pubsub.get_message(timeout=5.0)
                    if message is None:
                        pubsub.check_health()  # a PING now and then: a dead connection raises
                    elif message["type"] == "subscribe":
                        forget()  # whatever was announced before we listened
                        self.live, failures = True, 0
                    elif message["type"] == "message":
                        forget()
            except Exception as exc:  # Redis gone, or a connection broken: read the database meanwhile
                self.live = False
                forget()
                if failures == 0:
                    log.warning("not listening for API key changes (keys are read on every call): %s", exc)
                time.sleep(_RETRY_S[min(failures, len(_RETRY_S) - 1)])
                failures += 1
            finally:
                self.live = False
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()


_listener_of_process: _Listener | None = None
_listener_lock = threading.Lock()


def _listener() -> _Listener:
    """This process's listener, started by its first call (a forked child starts its own)."""
    global _listener_of_process
    listener = _listener_of_process
    if listener is None or listener.pid != os.getpid():
        with _listener_lock:
            listener = _listener_of_process
            if listener is None or listener.pid != os.getpid():
                if listener is not None:  # the parent's: its thread did not survive the fork
                    forget()
                listener = _listener_of_process = _Listener()
                listener.start()
    return listener
