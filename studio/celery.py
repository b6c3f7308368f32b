"""The one Celery app. Settings come from Django's (``CELERY_*``); tasks are found per app."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Sequence
from functools import cache

import redis
from celery import Celery, Task
from celery.signals import setup_logging, task_postrun, worker_init, worker_process_init, worker_ready
from celery.utils.nodenames import anon_nodename

from studio.heap import freeze_startup_objects

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

WORKER_CONN_MAX_AGE = 300


@setup_logging.connect
def _django_logging(**kwargs) -> None:
    """Workers and beat log as the web does (``settings.LOGGING``: plain or JSON lines, always
    redacted) instead of Celery's own set-up."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_init.connect
def _persistent_database_connections(**kwargs) -> None:
    """Workers keep their PostgreSQL connection, one per process (prefork) or thread (thread
    pool), rather than the web's pool: a new connection costs several milliseconds (SCRAM), a
    step a few. Celery's Django fix-up would close it around every task (and a prefork child's
    whole pool with it) unless ``CELERY_DB_REUSE_MAX`` is set (settings.py); ``_connections_tidy``
    does Django's per-request hygiene instead. Runs in the worker's main process before the
    pool starts, so prefork children inherit it."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    database["OPTIONS"].pop("pool", None)
    database["CONN_MAX_AGE"] = WORKER_CONN_MAX_AGE


# Start-up is over in a worker's main process once it consumes (thread pool: its tasks run there)
# and in a prefork child once it is initialised: what they loaded stays out of full collections.
worker_ready.connect(freeze_startup_objects, weak=False)
worker_process_init.connect(freeze_startup_objects, weak=False)


@task_postrun.connect
def _connections_tidy(**kwargs) -> None:
    """After each task, as Django does after each request: close a connection that saw an error
    was left inside a transaction, or outlived ``CONN_MAX_AGE``."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()


@app.task(name="studio.ping")
def ping() -> str:
    """A no-op round trip, used by health checks and the Celery baseline benchmark."""
    return "pong"


# -- bounded beat jobs ------------------------------------------------------------------------------

# A backlog is worked off by chained rounds; this caps one chain (the next beat starts another).
MAX_CHAINED_ROUNDS = 100


def next_round(task: Task, round_no: int, *, more: bool) -> None:
    """A beat job that works in bounded batches (``round_no`` of a chain) found its batch full:
    enqueue the next round now rather than wait for the next beat."""
    if more and round_no + 1 < MAX_CHAINED_ROUNDS:
        task.delay(round_no + 1)


# -- sending tasks without Celery's publishing layers -------------------------------------------

_REDIS_SCHEMES = ("redis://", "rediss://")
_BODY_TAIL = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def send_tasks(task: Task, calls: Sequence[tuple[list, str]]) -> list[str]:
    """Send one ``task`` per ``(args, queue)``, as ``task.apply_async(args, queue=queue)`` would,
    all in one round trip: the message ``apply_async`` builds (Celery's protocol 2, in kombu's
    Redis envelope), pushed onto the queue's Redis list. ``apply_async`` spends about 0.3 ms of
    CPU per task above that in Celery's and kombu's layers (configuration read through Django's
    settings, the queue declared again, retry wrappers): a tenth of a worker step. Another broker
    goes through ``apply_async``. Left out: the ``before/after_task_publish`` signals (nothing
    here listens) and the sending task's id as ``parent_id`` (nothing reads it).
    ``tests/studio/test_celery.py`` holds the message to ``apply_async``'s, field by field.
    Returns the tasks' ids."""
    envelope = _redis_envelope()
    if envelope is None:
        return [task.apply_async(args=args, queue=queue).id for args, queue in calls]
    prefix, time_limits = envelope
    origin = anon_nodename()
    ids = [str(uuid.uuid4()) for _ in calls]
    messages = [
        (prefix + queue, _message(task, task_id, args, queue, time_limits, origin))
        for task_id, (args, queue) in zip(ids, calls, strict=True)
    ]
    client = _broker_client()
    if len(messages) == 1:
        client.lpush(*messages[0])
    elif messages:
        with client.pipeline(transaction=False) as pipe:
            for key, message in messages:
                pipe.lpush(key, message)
            pipe.execute()
    return ids


def _message(task: Task, task_id: str, args: list, queue: str, time_limits: list, origin: str) -> bytes:
    body = json.dumps([args, {}, _BODY_TAIL]).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": task.name, "id": task_id, "shadow": None, "eta": None, "expires": None,
            "group": None, "group_index": None, "retries": 0, "timelimit": time_limits, "root_id": task_id,
            "parent_id": None, "argsrepr": repr(args) if args else "()", "kwargsrepr": "{}", "origin": origin,
            "ignore_result": bool(task.ignore_result), "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": "", "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }).encode()  # fmt: skip


@cache
def _redis_envelope() -> tuple[str, list] | None:
    """The queue keys' prefix and the time limits, read from Celery's configuration once (each
    read goes through Django's settings); None when the broker is not Redis."""
    conf = app.conf
    if not conf.broker_url.startswith(_REDIS_SCHEMES):
        return None
    prefix = (conf.broker_transport_options or {}).get("global_keyprefix", "")
    return prefix, [conf.task_time_limit, conf.task_soft_time_limit]


@cache
def _broker_client() -> redis.Redis:
    return redis.Redis.from_url(app.conf.broker_url, socket_timeout=5, socket_connect_timeout=5)
