"""Search in a big shared table: a tenant owning 1 % of it still gets its k results, and it is
the iterative index scan that makes that so when the HNSW index is used."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DataError, connection, transaction
from django.test.utils import CaptureQueriesContext

from studio.bench.memory import copy_items, random_unit_vectors
from studio.memory import selectors, services
from studio.memory.models import MemoryNamespace
from studio.memory.selectors import search_sql, vector_literal
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db

TOTAL = 10_000  # 50,000 in the issue; the ratio (1 %) is what matters, and this keeps the test quick
SMALL_SHARE = 0.01


@pytest.fixture
def big_table():
    """One tenant with 99 % of the rows, one with 1 %, HNSW built over all of them (the
    migration's index is dropped and rebuilt after the COPY, inside the test's transaction)."""
    big, small = make_tenant("Big"), make_tenant("Small")
    namespaces = {}
    for tenant in (big, small):
        namespaces[tenant.pk] = MemoryNamespace.objects.create(
            tenant=tenant, name="docs", embedder={"kind": "hashing"}, dims=384, redaction_rules=[]
        )
    small_count = int(TOTAL * SMALL_SHARE)
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX memory_item_hnsw_384")
    copy_items(table="memory_memoryitem", tenant_id=big.pk, namespace_id=namespaces[big.pk].pk,
               vectors=random_unit_vectors(TOTAL - small_count, 384, seed=1))  # fmt: skip
    copy_items(table="memory_memoryitem", tenant_id=small.pk, namespace_id=namespaces[small.pk].pk,
               vectors=random_unit_vectors(small_count, 384, seed=2))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the COPY's deferred FK checks, now
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cursor.execute(
            "CREATE INDEX memory_item_hnsw_384 ON memory_memoryitem "
            "USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dims = 384"
        )
        cursor.execute("ANALYZE memory_memoryitem")
    return big, small, namespaces


def hnsw_only_search(tenant, namespace, vector, *, iterative: str) -> list[int]:
    """The service's statement with only the HNSW index available to the planner."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Every btree goes (rolled back with the savepoint below): only HNSW or a scan remain.
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'memory_memoryitem' "
            "AND indexdef NOT LIKE '%%hnsw%%' AND indexname NOT LIKE '%%pkey'"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"SET LOCAL hnsw.iterative_scan = {iterative}")
        # pgvector's default candidate list: the test's transaction still holds what an earlier
        # search in it SET LOCAL (``selectors.EF_SEARCH``), which would hide how few come back.
        cursor.execute("SET LOCAL hnsw.ef_search = 40")
        sql = search_sql(384, with_filter=False)
        params = {"q": vector_literal(vector), "tenant": tenant.pk, "namespace": namespace.pk, "k": 10}
        cursor.execute("EXPLAIN " + sql, params)
        assert "memory_item_hnsw_384" in "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    return ids


def test_a_tenant_owning_one_percent_of_the_table_gets_k_results(big_table):
    _, small, namespaces = big_table
    queries = [q.tolist() if hasattr(q, "tolist") else q for q in random_unit_vectors(5, 384, seed=3)]
    small_ids = set(services.MemoryItem.objects.filter(tenant=small).values_list("pk", flat=True))
    for vector in queries:
        hits = services.memory_search(tenant=small, namespace="docs", vector=vector, k=10)
        assert len(hits) == 10
        assert {h.id for h in hits} <= small_ids, "only the tenant's own items"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    # Forced onto the HNSW index: without iterative scans the tenant filter runs on the index's
    # ef_search candidates, almost none of which are the small tenant's; with them, k rows come back.
    without = [len(hnsw_only_search(small, namespaces[small.pk], v, iterative="off")) for v in queries]
    with_iterative = [
        len(hnsw_only_search(small, namespaces[small.pk], v, iterative=selectors.ITERATIVE_SCAN))
        for v in queries
    ]
    assert with_iterative == [10] * len(queries)
    assert sum(without) < 10 * len(queries) / 2, without


def test_the_big_tenant_gets_the_same_top_10_as_an_exact_scan(big_table):
    """9 of the exact top 10, on average over forty queries. The big tenant's searches may go
    through HNSW, which is approximate and built with random levels: one query's top 10 missed
    two in two of a dozen full runs, so one query is too few to hold to 9. (Through HNSW this
    data, uniform random vectors, gave recall 0.935-0.960 over forty queries at ef_search 400,
    and 0.965-0.975 at 500-600, forced through the index; when the planner sorts exactly, 1.000.)"""
    big, _, _ = big_table
    found = 0
    for vector in random_unit_vectors(40, 384, seed=4):
        vector = vector.tolist() if hasattr(vector, "tolist") else vector
        hits = services.memory_search(tenant=big, namespace="docs", vector=vector, k=10)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM memory_memoryitem WHERE tenant_id = %s ORDER BY embedding <=> %s::vector LIMIT 10",
                [big.pk, vector_literal(vector)],
            )
            exact = [row[0] for row in cursor.fetchall()]
        found += len({h.id for h in hits} & set(exact))
    assert found / (40 * 10) >= 0.9, f"recall@10 {found / 400:.3f}"


def test_expired_items_are_never_returned_even_before_the_purge(db):
    tenant = make_tenant()
    item = services.memory_add_one(tenant=tenant, namespace="n", content="short lived fact", ttl_seconds=60)
    services.MemoryItem.objects.filter(pk=item.pk).update(expires_at=item.created_at - timedelta(seconds=5))
    assert services.memory_search(tenant=tenant, namespace="n", query="short lived fact") == []


def test_a_namespace_never_written_is_empty_and_k_is_bounded(db):
    tenant = make_tenant()
    assert services.memory_search(tenant=tenant, namespace="nothing", query="anything") == []
    with pytest.raises(services.MemoryValidationError) as exc:
        services.memory_search(tenant=tenant, namespace="nothing", query="anything", k=1000)
    assert exc.value.field == "k"


@pytest.mark.django_db(transaction=True)
def test_a_new_dimension_gets_its_partial_hnsw_index_built_concurrently():
    from studio.memory.tasks import memory_index_ensure_task

    def indexes() -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'memory_item_hnsw_8'")
            return {row[0] for row in cursor.fetchall()}

    try:
        memory_index_ensure_task(8)  # what a namespace of 8 dimensions enqueues on creation
        memory_index_ensure_task(8)  # and again: safe to run twice
        [ddl] = indexes()
        assert "hnsw (((embedding)::vector(8)) vector_cosine_ops) WHERE (dims = 8)" in ddl
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP INDEX IF EXISTS memory_item_hnsw_8")


def _vector(seed: int) -> list[float]:
    vector = random_unit_vectors(1, 384, seed=seed)[0]
    return vector.tolist() if hasattr(vector, "tolist") else vector


def _item(tenant, namespace: str, content: str, vector: list[float], **extra):
    return services.memory_add_one(
        tenant=tenant, namespace=namespace, content=content, embedding=vector, **extra
    )


def _found(tenant, vector: list[float], **extra) -> list[int]:
    return [h.id for h in services.memory_search(tenant=tenant, namespace="docs", vector=vector, **extra)]


def test_a_vector_search_is_one_round_trip_once_the_namespace_is_known(db):
    tenant = make_tenant()
    vector = _vector(10)
    item = _item(tenant, "docs", "the nearest", vector)
    selectors._namespace_ids.clear()
    with CaptureQueriesContext(connection) as first:
        assert _found(tenant, vector, k=1) == [item.pk]
    with CaptureQueriesContext(connection) as again:
        assert _found(tenant, vector, k=1) == [item.pk]
    assert len(first) == 2  # the namespace lookup, then the search
    assert len(again) == 1, [q["sql"][:80] for q in again]
    assert "SET LOCAL hnsw.iterative_scan" in again[0]["sql"] and "BEGIN" not in again[0]["sql"]


def test_a_stale_remembered_namespace_never_widens_a_search(db):
    """Whatever id is remembered for a name, only that tenant's namespace of that name is searched."""
    tenant, other = make_tenant("Owner"), make_tenant("Outsider")
    vector = _vector(11)
    mine = _item(tenant, "docs", "mine", vector)
    sibling = _item(tenant, "drafts", "same tenant, other namespace", vector)
    foreign = _item(other, "docs", "another tenant's", vector)
    for wrong in (sibling.namespace_id, foreign.namespace_id, 10**9):
        selectors._namespace_ids[(tenant.pk, "docs")] = (wrong, 384)
        assert _found(tenant, vector) == [mine.pk], wrong
        assert selectors._namespace_ids[(tenant.pk, "docs")] == (mine.namespace_id, 384)
    # A namespace deleted and made again under the same name: the new one is searched.
    MemoryNamespace.objects.filter(pk=mine.namespace_id).delete()
    again = _item(tenant, "docs", "made again", vector)
    assert _found(tenant, vector) == [again.pk]
    MemoryNamespace.objects.filter(pk=again.namespace_id).delete()
    assert services.memory_search(tenant=tenant, namespace="docs", vector=vector) == []
    assert (tenant.pk, "docs") not in selectors._namespace_ids


def test_a_namespace_re_embedded_to_another_dimension_refuses_the_old_vectors(db):
    tenant = make_tenant()
    vector = _vector(12)
    item = _item(tenant, "docs", "old embedding", vector)
    assert services.memory_search(tenant=tenant, namespace="docs", vector=vector)  # remembered as 384
    MemoryNamespace.objects.filter(pk=item.namespace_id).update(
        dims=8, embedder={"kind": "http", "shape": "openai", "model": "small", "dims": 8}
    )
    with pytest.raises(services.DimensionMismatch):
        services.memory_search(tenant=tenant, namespace="docs", vector=vector)


def test_filters_min_score_and_an_empty_namespace_on_the_remembered_path(db):
    tenant = make_tenant()
    vector = _vector(13)
    en = _item(tenant, "docs", "english", vector, metadata={"lang": "en"})
    _item(tenant, "docs", "french", _vector(14), metadata={"lang": "fr"})
    assert len(_found(tenant, vector)) == 2
    assert _found(tenant, vector, filter={"lang": "en"}) == [en.pk]
    assert _found(tenant, vector, filter={"lang": "de"}) == []
    assert _found(tenant, vector, min_score=0.99) == [en.pk]
    services.MemoryItem.objects.filter(tenant=tenant).delete()
    assert _found(tenant, vector) == []


def test_vector_literal_is_read_by_pgvector_as_the_float32_values_given(db):
    vector = [1, -0.5, 1e-7, -2.5e-12, 3.0e38, 0.12345678912345, 7.0]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT %s::vector::real[], %s::float8[]::real[]",
            [vector_literal(vector), [float(x) for x in vector]],
        )
        read, as_float32 = cursor.fetchone()
        assert read == as_float32
        assert read[5] != vector[5]  # rounded to float32, so the comparison above means something
        with pytest.raises(DataError):
            cursor.execute("SELECT %s::vector", [vector_literal([0.5, float("nan")])])
