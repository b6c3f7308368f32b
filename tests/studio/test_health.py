"""/healthz reports the database, Redis and the Celery workers that answered a ping."""

from __future__ import annotations

import pytest
from django.test import Client

from studio.celery import ping


@pytest.mark.django_db(transaction=True)
def test_healthz_is_ok_with_a_real_worker(celery_worker):
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["database"]["pgvector"]
    assert body["redis"]["ok"]
    assert body["workers"]["count"] >= 1


@pytest.mark.django_db(transaction=True)
def test_a_task_round_trips_through_the_worker(celery_worker):
    assert ping.delay().get(timeout=20) == "pong"


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["redis"]["ok"] is False and "Connection" in body["redis"]["error"]
    assert body["database"]["ok"] is True
