"""Retention: time to live and maximum items, enforced in bounded batches.

The beat job (``tasks.memory_retention_enforce_task``) calls ``retention_enforce`` with a row
budget; when the budget ran out it re-enqueues itself, so a large backlog is worked off in
short transactions that never hold locks for long. Redaction rules apply on write
(``services.redact_for``) and erasure by subject is immediate (``memory_forget_subject``).
Every purge is recorded (``MemoryPurge``) with its namespace, count and reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db import connection, transaction

from studio.memory.models import MemoryItem, MemoryNamespace, PurgeReason
from studio.memory.services import purge_record

DEFAULT_BATCH = 1000


@dataclass
class RetentionResult:
    deleted: int = 0
    by_reason: Counter = field(default_factory=Counter)
    more: bool = False  # the budget ran out before the work did


def purge_expired(*, batch: int) -> int:
    """Delete up to ``batch`` expired unpinned items (oldest expiry first). SKIP LOCKED: two enforcers
    running at once take different rows instead of waiting on each other."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            DELETE FROM memory_memoryitem WHERE id IN (
                SELECT id FROM memory_memoryitem
                WHERE expires_at IS NOT NULL AND expires_at <= now() AND NOT pinned
                ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING tenant_id, namespace_id
            """,
            [batch],
        )
        counts = Counter(cursor.fetchall())
        names = dict(
            MemoryNamespace.objects.filter(pk__in={ns for _, ns in counts}).values_list("pk", "name")
        )
        for (tenant_id, namespace_id), count in counts.items():
            purge_record(tenant_id=tenant_id, namespace=names.get(namespace_id, ""), reason=PurgeReason.TTL,
                         count=count, actor="retention")  # fmt: skip
    return sum(counts.values())


def evict_over_limit(*, namespace_id: int, batch: int) -> int:
    """Delete the oldest unpinned items beyond the namespace's ``max_items`` (up to ``batch``).

    The namespace row is locked (skipping one another enforcer holds), so two enforcers never
    both count the same excess and evict twice as much."""
    with transaction.atomic():
        ns = MemoryNamespace.objects.select_for_update(skip_locked=True).filter(pk=namespace_id).first()
        if ns is None or ns.max_items is None:
            return 0
        excess = MemoryItem.objects.filter(tenant_id=ns.tenant_id, namespace=ns).count() - ns.max_items
        if excess <= 0:
            return 0
        doomed = list(
            MemoryItem.objects.filter(tenant_id=ns.tenant_id, namespace=ns, pinned=False)
            .order_by("created_at", "id")
            .values_list("pk", flat=True)[: min(excess, batch)]
        )
        deleted, _ = MemoryItem.objects.filter(pk__in=doomed).delete()
        purge_record(tenant_id=ns.tenant_id, namespace=ns.name, reason=PurgeReason.MAX_ITEMS, count=deleted,
                     actor="retention")  # fmt: skip
    return deleted


def retention_enforce(*, batch: int = DEFAULT_BATCH) -> RetentionResult:
    """One bounded round over every tenant: expired items first, then namespaces over their limit."""
    result = RetentionResult()
    expired = purge_expired(batch=batch)
    result.deleted += expired
    result.by_reason[PurgeReason.TTL] += expired
    budget = batch - expired
    if budget <= 0:
        result.more = True
        return result
    for namespace_id in MemoryNamespace.objects.filter(max_items__isnull=False).values_list("pk", flat=True):
        if budget <= 0:
            result.more = True
            break
        evicted = evict_over_limit(namespace_id=namespace_id, batch=budget)
        budget -= evicted
        result.deleted += evicted
        result.by_reason[PurgeReason.MAX_ITEMS] += evicted
    if budget <= 0:
        result.more = True
    return result
