"""The one Celery app. Settings come from Django's (``CELERY_*``); tasks are found per app."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="studio.ping")
def ping() -> str:
    """A no-op round trip, used by health checks and the Celery baseline benchmark."""
    return "pong"
