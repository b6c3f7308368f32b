"""Memory tasks: retention (beat, bounded, re-enqueues itself) and per-dimension HNSW indexes."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import connection

from studio.celery import next_round
from studio.memory import retention
from studio.memory.models import HNSW_MAX_DIMS, hnsw_index_sql

log = logging.getLogger(__name__)


@shared_task(name="memory.retention_enforce", ignore_result=True)
def memory_retention_enforce_task(round_no: int = 0) -> dict:
    """Beat: enforce TTL and max-items in one bounded batch; when the batch was full, enqueue the
    next round right away instead of waiting for the next beat. Safe to run twice at once
    (SKIP LOCKED on items, a lock per namespace)."""
    batch = getattr(settings, "MEMORY_PURGE_BATCH", retention.DEFAULT_BATCH)
    result = retention.retention_enforce(batch=batch)
    next_round(memory_retention_enforce_task, round_no, more=result.more)
    return {
        "deleted": result.deleted,
        "more": result.more,
        **{str(k): v for k, v in result.by_reason.items()},
    }


@shared_task(name="memory.index_ensure", ignore_result=True)
def memory_index_ensure_task(dims: int) -> None:
    """Build the partial HNSW index for a dimension a namespace started using. CONCURRENTLY, so
    writes go on while it builds; until it exists, that dimension's searches are exact."""
    dims = int(dims)
    if not 1 <= dims <= HNSW_MAX_DIMS:
        return
    with connection.cursor() as cursor:  # autocommit: CONCURRENTLY cannot run in a transaction
        cursor.execute(hnsw_index_sql(dims, concurrently=True))
    log.info("memory: HNSW index for %s dimensions is ready", dims)
