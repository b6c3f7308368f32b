"""Writes to long-term memory: namespaces, items (redacted before they are stored), deletions,
erasure of a subject, and reviewers' corrections. Reads live in ``selectors``."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from studio.governance.audit import audit_append, digest
from studio.governance.redaction import BUILTIN_RULES, Rule, redact, tenant_rules
from studio.memory import embedders
from studio.memory.models import (
    DEFAULT_DIMS,
    HNSW_MAX_DIMS,
    MemoryItem,
    MemoryNamespace,
    MemoryPurge,
    PurgeReason,
)
from studio.memory.selectors import memory_search  # noqa: F401  (re-exported: callers think in services)
from studio.tenants.models import Tenant

log = logging.getLogger(__name__)

NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
MAX_CONTENT_CHARS = 20_000
MAX_BATCH = 500
MAX_SUBJECT_CHARS = 200
MAX_METADATA_BYTES = 16_000


class MemoryValidationError(Exception):
    """A request memory cannot take; ``field`` names what is wrong (``items.2.content``)."""

    code = "invalid"

    def __init__(self, field: str, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        if code:
            self.code = code


class DimensionMismatch(MemoryValidationError):
    code = "dimension_mismatch"


class EmbedderUnavailable(Exception):
    """The namespace's embedder cannot embed right now (not installed, provider down)."""


def namespace_validate(name: str) -> str:
    if not isinstance(name, str) or not NAMESPACE_RE.match(name):
        raise MemoryValidationError(
            "namespace", "use 1 to 100 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def _defaults(tenant: Tenant) -> dict:
    return ((tenant.settings or {}).get("memory") or {}).get("defaults") or {}


def memory_namespace_get_or_create(*, tenant: Tenant, name: str, spec: dict | None = None) -> MemoryNamespace:
    """The namespace, created on first use with the tenant's embedder and default policy.

    Its embedder (and so its dimension) is fixed from then on; a new dimension gets its
    partial HNSW index built concurrently after commit."""
    namespace_validate(name)
    existing = MemoryNamespace.objects.filter(tenant=tenant, name=name).first()
    if existing is not None:
        return existing
    try:
        spec = embedders.normalize_spec(spec) if spec is not None else embedders.tenant_embedder_spec(tenant)
    except embedders.EmbedderError as exc:
        raise EmbedderUnavailable(str(exc)) from None
    defaults = _defaults(tenant)
    namespace, created = MemoryNamespace.objects.get_or_create(
        tenant=tenant,
        name=name,
        defaults={
            "embedder": spec,
            "dims": embedders.spec_dims(spec),
            "ttl_seconds": defaults.get("ttl_seconds"),
            "max_items": defaults.get("max_items"),
            "redaction_rules": defaults.get("redaction_rules", list(BUILTIN_RULES)),
        },
    )
    if created:
        _index_ensure_on_commit(namespace.dims)
    return namespace


def _index_ensure_on_commit(dims: int) -> None:
    """After commit, build the partial HNSW index of a dimension the migration did not index."""
    if dims != DEFAULT_DIMS and dims <= HNSW_MAX_DIMS:
        from studio.memory.tasks import memory_index_ensure_task

        transaction.on_commit(lambda: memory_index_ensure_task.delay(dims))


def memory_namespace_set_policy(
    *,
    namespace: MemoryNamespace,
    ttl_seconds: int | None,
    max_items: int | None,
    redaction_rules: list[str],
    actor: str = "system",
) -> MemoryNamespace:
    """Change a namespace's retention (audited); the beat job applies it to existing items on its
    next round."""
    known = tenant_rules(Tenant.objects.only("settings").get(pk=namespace.tenant_id).settings)
    unknown = [r for r in redaction_rules if r not in known]
    if unknown:
        raise MemoryValidationError("redaction_rules", f"unknown rule(s): {', '.join(unknown)}")
    if ttl_seconds is not None and ttl_seconds <= 0:
        raise MemoryValidationError("ttl_seconds", "must be positive (or empty to keep items)")
    if max_items is not None and max_items <= 0:
        raise MemoryValidationError("max_items", "must be positive (or empty for no limit)")
    namespace.ttl_seconds = ttl_seconds
    namespace.max_items = max_items
    namespace.redaction_rules = list(redaction_rules)
    with transaction.atomic():
        namespace.save(update_fields=["ttl_seconds", "max_items", "redaction_rules", "updated_at"])
        audit_append(tenant_id=namespace.tenant_id, actor=actor, action="memory.policy_changed",
                     target=f"memory:{namespace.name}",
                     data={"namespace": namespace.name, "ttl_seconds": ttl_seconds, "max_items": max_items,
                           "redaction_rules": namespace.redaction_rules})  # fmt: skip
    return namespace


@dataclass
class ItemIn:
    content: str
    subject: str = ""
    metadata: dict | None = None
    source: str = ""
    ttl_seconds: int | None = None
    pinned: bool = False
    embedding: list[float] | None = None  # precomputed by the caller, in the namespace's dimension
    dedupe_key: str | None = None  # one item per key and tenant (see memory_add_one)


def _item_in(raw: ItemIn | dict, index: int, prefix: str) -> ItemIn:
    item = raw if isinstance(raw, ItemIn) else ItemIn(**raw)
    where = f"{prefix}{index}." if prefix else ""
    if not isinstance(item.content, str) or not item.content.strip():
        raise MemoryValidationError(f"{where}content", "must not be empty", code="empty_content")
    if len(item.content) > MAX_CONTENT_CHARS:
        raise MemoryValidationError(
            f"{where}content",
            f"is {len(item.content):,} characters; at most {MAX_CONTENT_CHARS:,}",
            code="content_too_large",
        )
    if item.metadata is not None and not isinstance(item.metadata, dict):
        raise MemoryValidationError(f"{where}metadata", "must be an object")
    if len(str(item.metadata or {})) > MAX_METADATA_BYTES:
        raise MemoryValidationError(f"{where}metadata", f"is larger than {MAX_METADATA_BYTES:,} bytes")
    item.subject = (item.subject or "").strip()
    if len(item.subject) > MAX_SUBJECT_CHARS:
        raise MemoryValidationError(f"{where}subject", f"at most {MAX_SUBJECT_CHARS} characters")
    if item.ttl_seconds is not None and item.ttl_seconds <= 0:
        raise MemoryValidationError(f"{where}ttl_seconds", "must be positive")
    return item


MAX_VECTOR_DIMS = 16_000


def checked_vector(value: Any, field: str) -> list[float]:
    """A precomputed embedding as given in a request: a list of 1 to 16,000 numbers, not all
    zeros. Checked in one pass over the element types (in C: 5 µs for 384 dimensions; a DRF
    FloatField per element cost about a millisecond, as much as the search)."""
    if not isinstance(value, list) or not value or len(value) > MAX_VECTOR_DIMS:
        raise MemoryValidationError(field, f"must be a list of 1 to {MAX_VECTOR_DIMS:,} numbers")
    types = set(map(type, value))  # bool is not a number here, though it is an int
    if not types <= {float, int}:
        raise MemoryValidationError(field, "must contain numbers only")
    if not any(value):
        raise MemoryValidationError(field, "must not be all zeros (it has no direction to compare)")
    return value if types == {float} else list(map(float, value))


def check_dims(namespace: MemoryNamespace, vector: list[float], field: str) -> None:
    if len(vector) != namespace.dims:
        raise DimensionMismatch(
            field,
            f"has {len(vector)} dimensions but namespace {namespace.name!r} holds {namespace.dims}-dimensional "
            f"embeddings ({embedders.spec_label(namespace.embedder)}); its dimension is fixed — use another "
            "namespace or re-embed this one (manage.py memory_reembed)",
        )


def embed_texts(namespace: MemoryNamespace, texts: list[str], *, purpose: str) -> list[list[float]]:
    try:
        embedder = embedders.get_embedder(namespace.embedder, tenant=namespace.tenant)
        return embedder.embed(texts, purpose=purpose)
    except embedders.EmbedderError as exc:
        raise EmbedderUnavailable(f"namespace {namespace.name!r}: {exc}") from None


def rules_for(namespace: MemoryNamespace, tenant: Tenant) -> dict[str, Rule]:
    """The tenant's redaction rules, with every rule the namespace applies among them: a rule
    added since ``tenant`` was loaded is read afresh, and one that is gone refuses the write
    (redaction fails closed, never open)."""
    available = tenant_rules(tenant.settings)
    if any(name not in available for name in namespace.redaction_rules or []):
        available = tenant_rules(Tenant.objects.only("settings").get(pk=tenant.pk).settings)
        unknown = [name for name in namespace.redaction_rules if name not in available]
        if unknown:
            raise MemoryValidationError(
                "redaction_rules",
                f"namespace {namespace.name!r} applies unknown rule(s): {', '.join(unknown)}",
            )
    return available


def redact_for(namespace: MemoryNamespace, text: str, available: dict[str, Rule]) -> str:
    """Content as the namespace's policy lets it be stored ([] keeps it as given); ``available``:
    the tenant's rules (``rules_for``)."""
    rules = namespace.redaction_rules or []
    return redact(text, rules, available) if rules else text


def namespaces_applying(*, tenant: Tenant, rule: str) -> list[str]:
    """The tenant's namespaces whose policy applies this redaction rule."""
    names = MemoryNamespace.objects.filter(tenant=tenant, redaction_rules__contains=[rule]).values_list(
        "name", flat=True
    )
    return [f"namespace {name}" for name in names]


def memory_add(
    *,
    tenant: Tenant,
    namespace: str,
    items: list[ItemIn | dict],
    source: str = "",
    field_prefix: str = "items.",
) -> list[MemoryItem]:
    """Store items (one or a batch of up to 500): content redacted by the namespace's rules first,
    so neither the text nor its embedding ever holds what the rules remove."""
    if not items:
        raise MemoryValidationError("items", "must not be empty")
    if len(items) > MAX_BATCH:
        raise MemoryValidationError("items", f"at most {MAX_BATCH} items per call")
    parsed = [_item_in(raw, i, field_prefix) for i, raw in enumerate(items)]
    ns = memory_namespace_get_or_create(tenant=tenant, name=namespace)
    available = rules_for(ns, tenant)
    contents = [redact_for(ns, item.content, available) for item in parsed]
    vectors: list[list[float] | None] = [item.embedding for item in parsed]
    for i, vector in enumerate(vectors):
        if vector is not None:
            check_dims(ns, vector, f"{field_prefix}{i}.embedding" if field_prefix else "embedding")
    missing = [i for i, v in enumerate(vectors) if v is None]
    embedded = embed_texts(ns, [contents[i] for i in missing], purpose="document") if missing else []
    for i, vector in zip(missing, embedded, strict=True):
        check_dims(ns, vector, "embedder")
        vectors[i] = vector
    now = timezone.now()
    rows = []
    for item, content, vector in zip(parsed, contents, vectors, strict=True):
        ttl = item.ttl_seconds or ns.ttl_seconds
        rows.append(
            MemoryItem(
                tenant=tenant, namespace=ns, content=content, embedding=vector, dims=ns.dims,
                metadata=item.metadata or {}, subject=item.subject, source=(item.source or source)[:200],
                pinned=item.pinned, expires_at=now + timedelta(seconds=ttl) if ttl else None,
                dedupe_key=item.dedupe_key or None,
            )
        )  # fmt: skip
    with transaction.atomic():
        created = MemoryItem.objects.bulk_create(rows)
    return created


def memory_add_one(
    *, tenant: Tenant, namespace: str, content: str, dedupe_key: str | None = None, **fields: Any
) -> MemoryItem:
    """One item. With a ``dedupe_key`` (a step's idempotency key) a second call returns the item
    the first one wrote, even when both run at once (the unique constraint decides)."""
    if dedupe_key:
        existing = MemoryItem.objects.filter(tenant=tenant, dedupe_key=dedupe_key).first()
        if existing is not None:
            return existing
    item_in = ItemIn(content=content, dedupe_key=dedupe_key, **fields)
    try:
        [item] = memory_add(tenant=tenant, namespace=namespace, items=[item_in], field_prefix="")
    except IntegrityError:
        if not dedupe_key:
            raise
        return MemoryItem.objects.get(tenant=tenant, dedupe_key=dedupe_key)
    return item


def memory_write_correction(
    *,
    tenant: Tenant,
    namespace: str,
    content: str,
    source: str,
    subject: str | None = None,
    metadata: dict | None = None,
) -> MemoryItem:
    """A reviewer's edited output, stored with source "correction" so later runs retrieve it
    (search with ``filter={"kind": "correction"}`` for corrections only). ``source`` is the
    reference of what was corrected ("review:12"), kept in the metadata."""
    return memory_add_one(
        tenant=tenant,
        namespace=namespace,
        content=content,
        subject=subject or "",
        metadata={**(metadata or {}), "kind": "correction", "reference": source},
        source="correction",
    )


def purge_record(
    *, tenant_id: int, namespace: str, reason: str, count: int, subject: str = "", actor: str = ""
) -> MemoryPurge | None:
    """Record a purge: in the audit log, and as a ``MemoryPurge`` row (the memory settings page
    lists those). An erased subject is kept only as its SHA-256."""
    if count <= 0:
        return None
    subject_digest = digest(subject) if subject else ""
    log.info(
        "memory purge: tenant %s, namespace %r, %s item(s), reason %s", tenant_id, namespace, count, reason
    )
    with transaction.atomic():
        audit_append(tenant_id=tenant_id, actor=actor or "system:retention", action="memory.purged",
                     target=f"memory:{namespace}",
                     data={"namespace": namespace, "reason": reason, "count": count,
                           "subject_sha256": subject_digest})  # fmt: skip
        return MemoryPurge.objects.create(
            tenant_id=tenant_id,
            namespace=namespace,
            reason=reason,
            count=count,
            subject_digest=subject_digest,
            actor=actor,
        )


def memory_delete(*, tenant: Tenant, namespace: str, item_id: int, actor: str = "") -> bool:
    """Delete one item of the tenant's namespace; False when there is no such item (404)."""
    with transaction.atomic():
        deleted, _ = MemoryItem.objects.filter(tenant=tenant, namespace__name=namespace, pk=item_id).delete()
        purge_record(tenant_id=tenant.pk, namespace=namespace, reason=PurgeReason.DELETE, count=deleted,
                     actor=actor)  # fmt: skip
    return bool(deleted)


def memory_set_pinned(
    *, tenant: Tenant, namespace: str, item_id: int, pinned: bool, actor: str = ""
) -> MemoryItem | None:
    """Pin an item (retention keeps it: neither its time to live nor the namespace's maximum
    removes it) or unpin it; None when the tenant's namespace has no such item. Audited: a pin
    changes what retention keeps."""
    with transaction.atomic():
        item = (
            MemoryItem.objects.select_for_update()
            .select_related("namespace")
            .defer("embedding")
            .filter(tenant=tenant, namespace__name=namespace, pk=item_id)
            .first()
        )
        if item is None:
            return None
        if item.pinned != pinned:
            item.pinned = pinned
            item.save(update_fields=["pinned"])
            audit_append(tenant_id=tenant.pk, actor=actor or "system", action="memory.item.pinned" if pinned
                         else "memory.item.unpinned", target=f"memory:{namespace}", data={"item": item.pk})  # fmt: skip
    return item


def memory_forget_subject(*, tenant: Tenant, subject: str, actor: str = "") -> dict[str, int]:
    """Erase every item about ``subject`` in every namespace of the tenant, at once (not by the
    beat job): the rows are deleted in this transaction, so no search can return them after it
    commits. Returns the counts per namespace; each is recorded as a purge."""
    subject = (subject or "").strip()
    if not subject:
        raise MemoryValidationError("subject", "must not be empty")
    counts: dict[str, int] = {}
    with transaction.atomic():
        rows = (
            MemoryItem.objects.filter(tenant=tenant, subject=subject)
            .values_list("namespace__name")
            .order_by()
        )
        for (name,) in rows:
            counts[name] = counts.get(name, 0) + 1
        MemoryItem.objects.filter(tenant=tenant, subject=subject).delete()
        for name, count in counts.items():
            purge_record(tenant_id=tenant.pk, namespace=name, reason=PurgeReason.SUBJECT, count=count,
                         subject=subject, actor=actor)  # fmt: skip
    return counts


def memory_reembed_batch(
    *, namespace: MemoryNamespace, spec: dict, after_id: int, batch: int
) -> tuple[int, int]:
    """Re-embed up to ``batch`` items (ids above ``after_id``) with ``spec``; returns (count, last id).

    Used by ``manage.py memory_reembed``, which switches the namespace to ``spec`` afterwards."""
    embedder = embedders.get_embedder(spec, tenant=namespace.tenant)  # normalizes the spec
    items = list(MemoryItem.objects.filter(namespace=namespace, pk__gt=after_id).order_by("pk")[:batch])
    if not items:
        return 0, after_id
    vectors = embedder.embed([item.content for item in items], purpose="document")
    with transaction.atomic():
        for item, vector in zip(items, vectors, strict=True):
            item.embedding = vector
            item.dims = embedder.dims
        MemoryItem.objects.bulk_update(items, ["embedding", "dims"])
    return len(items), items[-1].pk


def memory_namespace_switch(*, namespace: MemoryNamespace, spec: dict) -> MemoryNamespace:
    spec = embedders.normalize_spec(spec)
    namespace.embedder = spec
    namespace.dims = embedders.spec_dims(spec)
    namespace.save(update_fields=["embedder", "dims", "updated_at"])
    _index_ensure_on_commit(namespace.dims)
    return namespace
