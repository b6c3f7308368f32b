"""The retention beat task on the real worker: a backlog larger than one batch is worked off by
rounds that re-enqueue themselves, each recorded as a purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from studio.memory import retention, services
from studio.memory.models import MemoryItem, MemoryPurge
from studio.memory.tasks import memory_retention_enforce_task
from tests.conftest import wait_for
from tests.factories import make_tenant

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def test_a_backlog_is_purged_in_rounds_that_re_enqueue_themselves():
    tenant = make_tenant()
    backlog = retention.DEFAULT_BATCH * 2 + 500
    for start in range(0, backlog, services.MAX_BATCH):
        items = [
            {"content": f"event {i}", "ttl_seconds": 60} for i in range(start, start + services.MAX_BATCH)
        ]
        services.memory_add(tenant=tenant, namespace="logs", items=items)
    MemoryItem.objects.filter(tenant=tenant).update(expires_at=timezone.now() - timedelta(minutes=1))
    keep = services.memory_add_one(tenant=tenant, namespace="logs", content="still fresh", ttl_seconds=3600)

    memory_retention_enforce_task.delay()  # what beat sends every minute

    wait_for(
        lambda: MemoryItem.objects.filter(tenant=tenant).count() == 1, timeout=60, what="the backlog purged"
    )
    assert MemoryItem.objects.get(tenant=tenant).pk == keep.pk
    counts = sorted(MemoryPurge.objects.filter(tenant=tenant, reason="ttl").values_list("count", flat=True))
    assert counts == [500, retention.DEFAULT_BATCH, retention.DEFAULT_BATCH]  # three bounded rounds
    assert (
        services.memory_search(tenant=tenant, namespace="logs", query="event 7", k=10)[0].content
        == "still fresh"
    )
