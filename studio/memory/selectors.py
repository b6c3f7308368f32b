"""Reads of long-term memory: similarity search and namespaces. Every read is tenant-scoped."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from django.db import connection
from django.db.models import Q, QuerySet, Subquery

from studio.memory.models import MemoryItem, MemoryNamespace, MemoryPurge
from studio.tenants.models import Tenant

MAX_K = 100
DEFAULT_ITEMS_LISTED = 50
MAX_ITEMS_LISTED = 200
MAX_QUERY_CHARS = 20_000
# pgvector 0.8 iterative index scans: without them a tenant filter is applied to the ef_search
# candidates the index returned, and a tenant owning 1 % of the table gets ~0.4 of 10 results.
# relaxed_order is faster than strict_order and the outer ORDER BY restores the exact order of
# the k rows found (bench memory measures both).
ITERATIVE_SCAN = "relaxed_order"
# The candidate list of an HNSW scan. Measured on 9,900 random unit vectors of 384 dimensions
# (the worst case for HNSW: no clusters), the index forced (at 400 and more the planner may sort
# exactly instead, which is why an earlier note here read 1.00 for 400), relaxed iterative scan,
# top-10 recall against an exact scan over 40 queries and mean time per query: ef_search 100
# 0.56, 200 0.80, 400 0.93-0.935 / 2.7 ms, 500 0.965 / 2.9 ms, 600 0.975 / 3.3 ms, 800 0.998 /
# 4.2 ms (2026-12-08; each build differs a little: levels are random). 600 keeps BENCHMARKS.md's
# 0.95 on any data for a few milliseconds, still far below an exact scan of a big namespace;
# real embeddings cluster and do better. (Small namespaces never reach HNSW: the planner sorts
# their rows exactly.)
EF_SEARCH = 600


@dataclass(frozen=True)
class SearchHit:
    id: int
    content: str
    score: float  # cosine similarity, 1 is identical
    metadata: dict
    subject: str
    source: str
    created_at: datetime
    pinned: bool

    def as_dict(self) -> dict[str, Any]:
        # Field by field: dataclasses.asdict deep-copies (the metadata too), 20 µs a hit.
        return {"id": self.id, "content": self.content, "score": self.score, "metadata": self.metadata,
                "subject": self.subject, "source": self.source, "created_at": self.created_at.isoformat(),
                "pinned": self.pinned}  # fmt: skip


def vector_literal(vector: list[float]) -> str:
    """pgvector's text form, ``[0.12,-3.4e-5,…]``: a JSON array of numbers, which orjson writes
    for 384 of them in 9 µs (formatting each number in Python took 78 µs, as long as the rest of
    a small namespace's search in Python). NaN and infinities come out as ``null``, which
    PostgreSQL refuses, as it refused them spelt out."""
    return orjson.dumps(vector, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def search_sql(dims: int, *, with_filter: bool, check_namespace: bool = False) -> str:
    """The search statement, also run as "raw SQL" by the benchmark. The inner query has the shape
    the partial HNSW index serves (``dims = N`` and ``embedding::vector(N) <=> q``); for a small
    namespace the planner prefers the (tenant, namespace, created_at) btree and an exact sort.

    ``check_namespace`` adds what ``memory_search`` needs to trust a remembered namespace id: the
    id must still be the tenant's namespace called ``%(name)s``, of these dims. PostgreSQL runs the
    check once, before the scan (a one-time filter), so the plan is the one the ids alone get."""
    dims = int(dims)
    metadata = "AND metadata @> %(filter)s::jsonb" if with_filter else ""
    if check_namespace:
        metadata += f"""
              AND EXISTS (SELECT 1 FROM memory_memorynamespace
                          WHERE id = %(namespace)s AND tenant_id = %(tenant)s AND name = %(name)s AND dims = {dims})"""
    return f"""
        WITH nearest AS MATERIALIZED (
            SELECT id, content, metadata, subject, source, created_at, pinned,
                   embedding::vector({dims}) <=> %(q)s::vector({dims}) AS distance
            FROM memory_memoryitem
            WHERE dims = {dims} AND tenant_id = %(tenant)s AND namespace_id = %(namespace)s
              AND (expires_at IS NULL OR expires_at > now()) {metadata}
            ORDER BY embedding::vector({dims}) <=> %(q)s::vector({dims})
            LIMIT %(k)s
        )
        SELECT id, content, metadata, subject, source, created_at, pinned, 1 - distance AS score
        FROM nearest ORDER BY distance
    """


def search_statement(
    dims: int,
    *,
    k: int,
    with_filter: bool,
    check_namespace: bool = False,
    iterative_scan: str = ITERATIVE_SCAN,
) -> str:
    """The SET LOCALs and the search as one query string: one round trip. Django's psycopg cursor
    binds parameters on the client, so the string goes as a simple query, which PostgreSQL runs
    as one transaction of its own (SET LOCAL ends with it); inside a caller's transaction the
    settings last until that ends. The benchmark's raw SQL runs this string, less the namespace
    check."""
    search = search_sql(dims, with_filter=with_filter, check_namespace=check_namespace)
    return f"{search_settings(k, iterative_scan=iterative_scan)}; {search}"


def search_execute(cursor: Any, statement: str, params: dict[str, Any]) -> list[tuple]:
    """Execute a ``search_statement`` and return the rows of its last statement (the SETs have none)."""
    cursor.execute(statement, params)
    while cursor.nextset():
        pass
    return cursor.fetchall()


def search_rows(
    *,
    dims: int,
    tenant_id: int,
    namespace_id: int,
    namespace: str,
    vector: list[float],
    k: int,
    filter: dict | None = None,
) -> list[tuple]:
    """Run the search, iterative scans on, in one round trip with no explicit transaction (BEGIN
    and COMMIT were two more round trips, a third of the statement's time for a small tenant).
    Nothing comes back unless ``namespace_id`` is still the tenant's ``namespace``."""
    params = {
        "q": vector_literal(vector),
        "tenant": tenant_id,
        "namespace": namespace_id,
        "name": namespace,
        "k": k,
    }
    if filter:
        params["filter"] = json.dumps(filter)
    statement = search_statement(dims, k=k, with_filter=bool(filter), check_namespace=True)
    with connection.cursor() as cursor:
        return search_execute(cursor, statement, params)


def search_settings(k: int, *, iterative_scan: str = ITERATIVE_SCAN) -> str:
    """The SET LOCAL statements every search runs first."""
    ef_search = min(max(EF_SEARCH, int(k)), 1000)
    return f"SET LOCAL hnsw.iterative_scan = {iterative_scan}; SET LOCAL hnsw.ef_search = {ef_search}"


def namespace_get(*, tenant: Tenant, name: str) -> MemoryNamespace | None:
    return MemoryNamespace.objects.for_tenant(tenant).filter(name=name).first()


def memory_search(
    *,
    tenant: Tenant,
    namespace: str,
    query: str | None = None,
    vector: list[float] | None = None,
    k: int = 10,
    min_score: float | None = None,
    filter: dict | None = None,
) -> list[SearchHit]:
    """The ``k`` items of the tenant's namespace nearest to ``query`` (or to a precomputed
    ``vector``), best first, at least ``min_score`` similar and matching the metadata
    ``filter`` (containment: ``{"lang": "en"}``). A namespace never written is empty."""
    from studio.memory.services import MemoryValidationError, check_dims, checked_vector, embed_texts

    # The one place for these rules: the API passes its body's fields here as they came.
    if query is not None and not isinstance(query, str):
        raise MemoryValidationError("query", "must be a string")
    if vector is None and not (query or "").strip():
        raise MemoryValidationError("query", "must not be empty", code="empty_query")
    if query is not None and len(query) > MAX_QUERY_CHARS:
        raise MemoryValidationError(
            "query", f"at most {MAX_QUERY_CHARS:,} characters", code="query_too_large"
        )
    if vector is not None:
        vector = checked_vector(vector, "vector")
    if type(k) is not int or not 1 <= k <= MAX_K:  # a bool is not a count
        raise MemoryValidationError("k", f"must be a whole number between 1 and {MAX_K}")
    if min_score is not None and (type(min_score) not in (int, float) or not -1 <= min_score <= 1):
        raise MemoryValidationError("min_score", "must be a number between -1 and 1")
    if filter is not None and not isinstance(filter, dict):
        raise MemoryValidationError("filter", "must be an object (matched by containment)")
    key = (tenant.pk, namespace)
    searched = None  # the (namespace id, dims) already searched, from memory
    if vector is not None:
        remembered = _namespace_ids.get(key)
        if remembered is not None and remembered[1] == len(vector):
            namespace_id, dims = searched = remembered
            rows = search_rows(dims=dims, tenant_id=tenant.pk, namespace_id=namespace_id, namespace=namespace,
                               vector=vector, k=k, filter=filter)  # fmt: skip
            if rows:
                return _hits(rows, min_score)
    # Nothing remembered, or nothing found: either the namespace is empty (or filtered out), or it
    # is gone, was re-created or re-embedded since. The lookup tells which.
    ns = namespace_get(tenant=tenant, name=namespace)
    if ns is None:
        _namespace_ids.pop(key, None)
        return []
    _remember(key, (ns.pk, ns.dims))
    if vector is None:
        [vector] = embed_texts(ns, [query], purpose="query")
    check_dims(ns, vector, "vector")
    if searched == (ns.pk, ns.dims):  # the search above was this one, and it found nothing
        return []
    rows = search_rows(dims=ns.dims, tenant_id=tenant.pk, namespace_id=ns.pk, namespace=namespace,
                       vector=vector, k=k, filter=filter)  # fmt: skip
    return _hits(rows, min_score)


def _hits(rows: list[tuple], min_score: float | None) -> list[SearchHit]:
    hits = [
        SearchHit(id=r[0], content=r[1], metadata=r[2] if isinstance(r[2], dict) else json.loads(r[2] or "{}"),
                  subject=r[3], source=r[4], created_at=r[5], pinned=r[6], score=round(float(r[7]), 6))
        for r in rows
    ]  # fmt: skip
    if min_score is not None:
        hits = [h for h in hits if h.score >= min_score]
    return hits


# (tenant id, namespace name) -> (namespace id, dims), remembered per process so that a search
# with a vector is one round trip instead of two (the lookup, 0.15 ms, was a fifth of a small
# tenant's search). Safe when stale: the search statement itself checks that the id still names
# this tenant's namespace with these dims, and an empty answer falls back to the lookup; the
# tenant filter never comes from here.
_namespace_ids: dict[tuple[int, str], tuple[int, int]] = {}
NAMESPACE_IDS_MAX = 10_000


def _remember(key: tuple[int, str], value: tuple[int, int]) -> None:
    if len(_namespace_ids) >= NAMESPACE_IDS_MAX and key not in _namespace_ids:
        _namespace_ids.clear()
    _namespace_ids[key] = value


def namespace_list(*, tenant: Tenant, name: str | None = None) -> list[dict[str, Any]]:
    """The tenant's namespaces (or the one called ``name``) with their item counts and stored
    sizes (content, embedding and metadata as PostgreSQL stores them, TOAST-compressed where it
    applies)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.id, n.name, n.dims, n.embedder, n.ttl_seconds, n.max_items, n.redaction_rules,
                   n.created_at, count(i.id),
                   coalesce(sum(pg_column_size(i.content) + pg_column_size(i.embedding)
                                + pg_column_size(i.metadata)), 0),
                   count(i.id) FILTER (WHERE i.pinned), max(i.created_at)
            FROM memory_memorynamespace n
            LEFT JOIN memory_memoryitem i ON i.namespace_id = n.id AND i.tenant_id = n.tenant_id
            WHERE n.tenant_id = %s AND (%s::text IS NULL OR n.name = %s)
            GROUP BY n.id ORDER BY n.name
            """,
            [tenant.pk, name, name],
        )
        rows = cursor.fetchall()
    from studio.memory.embedders import spec_label

    def _json(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    return [
        {"id": r[0], "name": r[1], "dims": r[2], "embedder": _json(r[3]), "embedder_label": spec_label(_json(r[3])),
         "ttl_seconds": r[4], "max_items": r[5], "redaction_rules": _json(r[6]), "created_at": r[7],
         "count": r[8], "size_bytes": int(r[9]), "pinned": r[10], "last_written_at": r[11]}
        for r in rows
    ]  # fmt: skip


def item_list(
    *, namespace: MemoryNamespace, subject: str | None = None, before: int | None = None
) -> QuerySet[MemoryItem]:
    """The namespace's items, newest first, without their embeddings; ``subject``: only those
    about it; ``before``: only those after that item in this order (the next page). The
    (tenant, namespace, created_at) index serves it."""
    items = MemoryItem.objects.filter(tenant_id=namespace.tenant_id, namespace=namespace).defer("embedding")
    if subject:
        items = items.filter(subject=subject)
    if before:
        created = Subquery(MemoryItem.objects.filter(pk=before, namespace=namespace).values("created_at")[:1])
        items = items.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=before))
    return items.order_by("-created_at", "-pk")


def item_get(*, tenant: Tenant, namespace: str, pk: int) -> MemoryItem | None:
    """One item of the tenant's namespace (its namespace loaded, its embedding not)."""
    items = MemoryItem.objects.filter(tenant=tenant, namespace__name=namespace, pk=pk)
    return items.select_related("namespace").defer("embedding").first()


def purge_list(*, tenant: Tenant, limit: int = 20) -> list[MemoryPurge]:
    return list(MemoryPurge.objects.for_tenant(tenant)[:limit])
