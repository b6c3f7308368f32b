"""Retention: TTL purge and max-items eviction in bounded batches, each purge recorded; erased
content is gone from search, not only from the table; corrections land in memory."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from studio.memory import retention, services
from studio.memory.models import MemoryItem, MemoryNamespace, MemoryPurge
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return make_tenant("Retained")


def add_many(tenant, namespace: str, count: int, **fields) -> list[MemoryItem]:
    return services.memory_add(
        tenant=tenant,
        namespace=namespace,
        items=[{"content": f"fact number {i}", **fields} for i in range(count)],
    )


def age(items: list[MemoryItem], *, seconds: int) -> None:
    """Pretend the items were written (and expire) ``seconds`` earlier."""
    for offset, item in enumerate(items):
        MemoryItem.objects.filter(pk=item.pk).update(
            created_at=item.created_at - timedelta(seconds=seconds - offset),
            expires_at=item.expires_at - timedelta(seconds=seconds) if item.expires_at else None,
        )


def test_ttl_purge_deletes_expired_items_in_bounded_batches_and_records_them(tenant):
    other = make_tenant("Other")
    expired = add_many(tenant, "chat", 5, ttl_seconds=60)
    age(expired, seconds=3600)
    kept = add_many(tenant, "chat", 2, ttl_seconds=3600)
    never = add_many(other, "chat", 2)  # no TTL at all

    first = retention.retention_enforce(batch=3)
    assert (first.deleted, first.more) == (3, True)  # the budget ran out: the task re-enqueues itself
    second = retention.retention_enforce(batch=3)
    assert (second.deleted, second.more) == (2, False)
    remaining = set(MemoryItem.objects.values_list("pk", flat=True))
    assert remaining == {i.pk for i in kept + never}
    purges = MemoryPurge.objects.filter(tenant=tenant, reason="ttl")
    assert sum(p.count for p in purges) == 5 and {p.namespace for p in purges} == {"chat"}


def test_max_items_evicts_the_oldest_unpinned_first(tenant):
    ns = services.memory_namespace_get_or_create(tenant=tenant, name="faq")
    items = add_many(tenant, "faq", 6)
    age(items, seconds=600)  # items[0] is the oldest
    MemoryItem.objects.filter(pk=items[0].pk).update(pinned=True)
    services.memory_namespace_set_policy(namespace=ns, ttl_seconds=None, max_items=3,
                                         redaction_rules=["email"])  # fmt: skip

    result = retention.retention_enforce(batch=100)
    assert result.deleted == 3
    left = set(MemoryItem.objects.filter(namespace=ns).values_list("pk", flat=True))
    assert left == {items[0].pk, items[4].pk, items[5].pk}  # the pinned one, then the newest two
    purge = MemoryPurge.objects.get(tenant=tenant)
    assert (purge.namespace, purge.reason, purge.count, purge.actor) == ("faq", "max_items", 3, "retention")
    contents = [
        h.content for h in services.memory_search(tenant=tenant, namespace="faq", query="fact number 1")
    ]
    assert sorted(contents) == [
        "fact number 0",
        "fact number 4",
        "fact number 5",
    ]  # evicted ones are not found


def test_forgotten_subject_is_not_findable_through_search(tenant):
    services.memory_add_one(
        tenant=tenant, namespace="crm", content="Noor asked about refunds", subject="noor"
    )
    services.memory_add_one(tenant=tenant, namespace="crm", content="Sam asked about refunds", subject="sam")
    assert len(services.memory_search(tenant=tenant, namespace="crm", query="asked about refunds")) == 2
    assert services.memory_forget_subject(tenant=tenant, subject="noor") == {"crm": 1}
    hits = services.memory_search(tenant=tenant, namespace="crm", query="Noor asked about refunds", k=10)
    assert [h.subject for h in hits] == ["sam"]
    assert not MemoryItem.objects.filter(subject="noor").exists()


def test_content_is_redacted_on_write_by_the_namespace_rules(tenant):
    ns = services.memory_namespace_get_or_create(tenant=tenant, name="tickets")
    assert sorted(ns.redaction_rules) == ["card", "email", "phone"]  # built-in rules by default
    item = services.memory_add_one(tenant=tenant, namespace="tickets",
                                   content="card 4111 1111 1111 1111, mail jo@example.org")  # fmt: skip
    assert item.content == "card [card], mail [email]"
    services.memory_namespace_set_policy(
        namespace=ns, ttl_seconds=None, max_items=None, redaction_rules=["card"]
    )
    item = services.memory_add_one(tenant=tenant, namespace="tickets", content="mail jo@example.org")
    assert item.content == "mail jo@example.org"
    with pytest.raises(services.MemoryValidationError):
        services.memory_namespace_set_policy(namespace=ns, ttl_seconds=None, max_items=None,
                                             redaction_rules=["ssn"])  # fmt: skip


def test_a_namespace_keeps_its_embedder_when_the_tenant_changes_its_default(tenant):
    services.memory_add_one(tenant=tenant, namespace="old", content="first")
    tenant.settings = {"memory": {"embedder": {"kind": "http", "shape": "openai", "model": "m", "dims": 8}}}
    tenant.save()
    services.memory_add_one(tenant=tenant, namespace="old", content="second")  # still hashing, 384
    assert MemoryNamespace.objects.get(tenant=tenant, name="old").dims == 384
    with pytest.raises(services.DimensionMismatch) as exc:
        services.memory_add(tenant=tenant, namespace="old", items=[{"content": "x", "embedding": [0.5] * 8}])
    assert exc.value.field == "items.0.embedding"


def test_a_correction_is_written_with_source_correction_and_found_later(tenant):
    item = services.memory_write_correction(
        tenant=tenant, namespace="replies", content="Refunds take 5 business days, not 10.",
        source="review:42", subject="cust-9", metadata={"flow": 3},
    )  # fmt: skip
    assert item.source == "correction"
    assert item.metadata == {"flow": 3, "kind": "correction", "reference": "review:42"}
    hits = services.memory_search(tenant=tenant, namespace="replies", query="how long do refunds take",
                                  filter={"kind": "correction"})  # fmt: skip
    assert [h.id for h in hits] == [item.id]


def test_ttl_items_expire_at_the_policy_time(tenant):
    ns = services.memory_namespace_get_or_create(tenant=tenant, name="short")
    services.memory_namespace_set_policy(namespace=ns, ttl_seconds=120, max_items=None, redaction_rules=[])
    item = services.memory_add_one(tenant=tenant, namespace="short", content="soon gone")
    assert timedelta(seconds=110) < item.expires_at - timezone.now() <= timedelta(seconds=120)


def test_memory_reembed_moves_a_namespace_to_another_embedder_in_batches(tenant):
    add_many(tenant, "kb", 5)
    out = io.StringIO()
    call_command(
        "memory_reembed", tenant.slug, "kb", "--embedder", '{"kind": "hashing"}', "--batch", "2", stdout=out
    )
    assert "re-embedded 5 item(s)" in out.getvalue()
    assert (
        services.memory_search(tenant=tenant, namespace="kb", query="fact number 3")[0].content
        == "fact number 3"
    )


def test_a_write_with_a_dedupe_key_happens_once(tenant):
    first = services.memory_add_one(tenant=tenant, namespace="steps", content="once", dedupe_key="run1:write")
    again = services.memory_add_one(tenant=tenant, namespace="steps", content="once", dedupe_key="run1:write")
    assert again.pk == first.pk and MemoryItem.objects.filter(tenant=tenant).count() == 1
    other = make_tenant("Other")  # keys are per tenant
    assert (
        services.memory_add_one(tenant=other, namespace="steps", content="x", dedupe_key="run1:write").pk
        != first.pk
    )


def test_a_pinned_item_outlives_its_time_to_live_until_it_is_unpinned(tenant):
    items = add_many(tenant, "chat", 2, ttl_seconds=60)
    age(items, seconds=3600)
    services.memory_set_pinned(tenant=tenant, namespace="chat", item_id=items[0].pk, pinned=True)
    assert retention.retention_enforce().deleted == 1
    assert set(MemoryItem.objects.values_list("pk", flat=True)) == {items[0].pk}
    services.memory_set_pinned(tenant=tenant, namespace="chat", item_id=items[0].pk, pinned=False)
    assert retention.retention_enforce().deleted == 1  # expired long ago: the next round takes it
    assert not MemoryItem.objects.exists()
