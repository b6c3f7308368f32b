"""Long-term memory: items with an embedding, in namespaces that fix their embedder and dimension.

Index choice: one table, one partial HNSW index per dimension in use, no partitioning by tenant.

``embedding`` is an untyped ``vector`` column (an HTTP provider may give 1,024 or 1,536
dimensions, the local models 384), so HNSW cannot index the column itself: each dimension
gets a partial expression index ``USING hnsw ((embedding::vector(N)) vector_cosine_ops)
WHERE dims = N``. The migration creates the one for 384 (the hashing and MiniLM embedders);
a namespace created with another dimension has its index built concurrently by a task, and
until it exists its searches are exact scans (correct, only slower).

Every search filters by tenant and namespace and runs with ``hnsw.iterative_scan`` switched
on (``selectors.ITERATIVE_SCAN``): without it the filter is applied to the ``ef_search``
candidates the index returned, and a tenant owning 1 % of the table got 7.5 of its 10 results
in the benchmark (4.6 in the 10,000-row test, ``tests/studio/memory/test_search.py``). With
it the scan goes on until k rows pass the filter. For a small tenant the planner does not use
HNSW at all: the (tenant, namespace, created_at) btree plus an exact sort of a few thousand
rows is cheaper, with recall 1.0.

Measured with ``manage.py bench memory`` (100,000 random unit vectors x 384 dimensions, 20
tenants from 1 % to 10 %, 2 shared cores, three runs on 2026-11-25; P95 in ms, recall@10
against an exact scan; ranges are across the runs):

    HNSW build (one partial index, maintenance_work_mem 1GB)      54.7 to 71.9 s
    largest tenant, 10 % (9,909 items):
      planner's plan: btree + exact sort      raw SQL 9.4-12.5   memory_search 10.7-14.9  recall 1.00
      HNSW forced (sorts priced out)          24.5-43.8                                 recall 0.20-0.22
    smallest tenant, 1 % (1,000 items):
      planner's plan: btree + exact sort      raw SQL 1.0-5.9    memory_search 1.9-10.1   recall 1.00
      HNSW forced, iterative scan on          81-113                                    recall 0.52-0.68
      HNSW forced, iterative scan off         returns 7.5-7.8 of 10 results
    after purging 30 % of the largest tenant (max-items eviction, 10,500-13,100 items/s):
      largest                                 raw SQL 10.7-22.3  memory_search 15.4-21.5  recall 1.00
      smallest                                raw SQL 1.2-5.2    memory_search 2.1-8.2    recall 1.00
    search API (in process: DRF, API-key auth, JSON) P95: 1.4-2.0x raw SQL for the largest tenant,
      2.7-5.4x for the smallest (about 2.5 ms of request handling on a 1-6 ms query)

Since then (2026-11-25, two runs) a search is one round trip, raw SQL likewise: smallest tenant
raw SQL P95 0.9-1.3 ms, memory_search 0.94-1.23x, search API 3.1-4.8x (P50 2.0-2.5 ms, of which
a no-op DRF view with the same API-key auth takes 0.8 ms); largest tenant API 1.5x.

So for tenants up to 10 % of 100,000 rows PostgreSQL rightly sorts the tenant's rows exactly
(what the btree below is for), recall is 1.0 and purges cannot hurt it. HNSW is there for
namespaces larger than measured here, where an exact sort grows with the row count (not
measured yet); on random vectors, the worst case for any graph index, its recall is 0.93 at
``ef_search`` 400 and 0.975 at 600 (``selectors.EF_SEARCH``, now 600), and the search never
forces it: the choice is the planner's. Partitioning per tenant (or a partial index per tenant) would
not speed up the exact path, which the btree already confines to one tenant's rows, and would
mean thousands of indexes to build and plan around; one shared partial index per dimension
is the simpler choice that meets the targets. ``relaxed_order`` and ``strict_order`` measured
alike (P95 within noise, the same recall); relaxed is kept, with an outer ORDER BY.

Purges delete rows; HNSW keeps dead tuples as graph links until VACUUM and iterative scans step
over them, so a purged item can never come back through search (it is gone from the heap).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from pgvector.django import VectorField

from studio.tenants.models import Tenant, TenantOwnedQuerySet

# The dimension the migration indexes (hashing and MiniLM embedders both give 384).
DEFAULT_DIMS = 384
# HNSW on ``vector`` indexes up to 2,000 dimensions; larger namespaces are searched exactly.
HNSW_MAX_DIMS = 2000


def hnsw_index_name(dims: int) -> str:
    return f"memory_item_hnsw_{dims}"


def hnsw_index_sql(dims: int, *, table: str = "memory_memoryitem", concurrently: bool = False) -> str:
    """The partial HNSW index for one dimension; serves ``memory_search`` in namespaces of that
    dimension: ``WHERE dims = N AND tenant_id = … AND namespace_id = … ORDER BY
    embedding::vector(N) <=> q LIMIT k``."""
    dims = int(dims)
    return (
        f"CREATE INDEX {'CONCURRENTLY ' if concurrently else ''}IF NOT EXISTS {hnsw_index_name(dims)} "
        f"ON {table} USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dims = {dims}"
    )


class MemoryNamespace(models.Model):
    """A tenant's named memory: it fixes the embedder (and so the dimension) of its items and
    carries the retention policy the beat job enforces."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memory_namespaces")
    name = models.CharField(max_length=100)
    # The embedder spec, e.g. {"kind": "hashing"} or {"kind": "http", "shape": "openai", …}.
    embedder = models.JSONField(default=dict)
    dims = models.PositiveSmallIntegerField()
    # Retention: None means "keep".
    ttl_seconds = models.PositiveIntegerField(null=True, blank=True)
    max_items = models.PositiveIntegerField(null=True, blank=True)
    # Built-in redaction rule names applied on write; [] writes content as given.
    redaction_rules = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        # Every memory call resolves its namespace by (tenant, name).
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="memory_namespace_unique")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"


class MemoryItem(models.Model):
    # No index of its own on tenant: memory_item_tenant_ns starts with it.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    # Its FK index serves deleting a namespace (the cascade: WHERE namespace_id IN …).
    namespace = models.ForeignKey(MemoryNamespace, on_delete=models.CASCADE, related_name="items")
    content = models.TextField()  # already redacted by the namespace's rules
    embedding = VectorField()  # untyped: see the module docstring
    dims = models.PositiveSmallIntegerField()
    metadata = models.JSONField(default=dict, blank=True)
    subject = models.CharField(max_length=200, blank=True, default="")  # the person it is about
    # A plain reference ("run:12/step:40", "review:7", "api:key-prefix", "correction"), never a FK.
    source = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    pinned = models.BooleanField(default=False)
    # Set by writers that may be delivered twice (a flow step's idempotency key): one item per key.
    # NULL, not "", for "no key": the partial unique index then leaves keyless items out.
    dedupe_key = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Small namespaces' searches (exact sort of their rows), counts per namespace, and
            # max-items eviction (oldest first): WHERE tenant_id = … AND namespace_id = … ORDER BY created_at.
            models.Index(fields=["tenant", "namespace", "created_at"], name="memory_item_tenant_ns"),
            # TTL purge: WHERE expires_at < now() AND NOT pinned ORDER BY expires_at LIMIT batch
            # (pinned items are kept, and left out of the index so the purge never walks over them).
            models.Index(
                fields=["expires_at"],
                name="memory_item_expires_unpinned",
                condition=Q(expires_at__isnull=False, pinned=False),
            ),
            # Forget a subject: WHERE tenant_id = … AND subject = ….
            models.Index(fields=["tenant", "subject"], name="memory_item_subject", condition=~Q(subject="")),
        ]
        constraints = [
            # A redelivered memory_write step finds the item it wrote: WHERE tenant_id = … AND dedupe_key = ….
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"],
                name="memory_item_dedupe",
                condition=Q(dedupe_key__isnull=False),
            ),
        ]
        # The HNSW index per dimension is raw SQL (hnsw_index_sql), created by migration 0002.

    def __str__(self) -> str:
        return f"{self.namespace.name}#{self.pk}"


class PurgeReason(models.TextChoices):
    TTL = "ttl", "Time to live"
    MAX_ITEMS = "max_items", "Maximum items"
    SUBJECT = "subject", "Forget subject"
    DELETE = "delete", "Deleted"
    NAMESPACE = "namespace", "Namespace cleared"


class MemoryPurge(models.Model):
    """One purge of memory items, for the memory settings page; the audit log has it too."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    namespace = models.CharField(max_length=100, blank=True)  # a name: the namespace may be gone
    reason = models.CharField(max_length=16, choices=PurgeReason.choices)
    count = models.PositiveIntegerField()
    # SHA-256 of an erased subject: the purge is traceable without keeping who it was about.
    subject_digest = models.CharField(max_length=64, blank=True, default="")
    actor = models.CharField(max_length=150, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        # The settings page lists a tenant's recent purges: (tenant, -created_at).
        indexes = [models.Index(fields=["tenant", "-created_at"], name="memory_purge_tenant")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.namespace}: {self.count} ({self.reason})"
