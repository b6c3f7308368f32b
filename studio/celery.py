"""The one Celery app. Settings come from Django's (``CELERY_*``); tasks are found per app."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import setup_logging, task_postrun, worker_init

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
