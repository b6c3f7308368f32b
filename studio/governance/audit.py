"""The hash-chained audit log: ``audit_append`` writes, ``audit_verify`` checks a tenant's chain.

Each entry's hash is SHA-256 over the previous entry's hash, a new line, and the entry's
canonical form: a JSON array of its sequence number, time, actor, action, target and details,
the details themselves as stored (canonical JSON text: keys sorted, no spaces).
Appends to one tenant's chain take a transaction-scoped advisory lock, so they line up without
gaps or forks; the entry is written in the caller's transaction (it exists if the change does).
Data is redacted with the built-in rules before it is stored; callers pass names and digests,
never secret values.

What is audited (admin-rate events, none on a run's hot path): publishing and deleting flows,
capability grants and refusals, tenant settings, API keys, credentials, members and roles,
review decisions, memory purges and retention policies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from studio.governance.models import AuditEntry
from studio.governance.redaction import redact

GENESIS = "0" * 64
_LOCK_CLASS = 0x41554449  # "AUDI": the advisory lock space of audit chains (one key per tenant)


def canonical(*, seq: int, at, actor: str, action: str, target: str, data: str) -> str:
    return json.dumps(
        [seq, at.isoformat(), actor, action, target, data], separators=(",", ":"), ensure_ascii=False
    )


def details_json(data: dict) -> str:
    return json.dumps(_redacted(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value


def user_label(user) -> str:
    """How the log names a person acting (``system`` when nobody is)."""
    return user.get_username() if user is not None else "system"


def digest(text: str) -> str:
    """How the log names something it must not keep (an erased subject): its SHA-256."""
    return hashlib.sha256(text.encode()).hexdigest()


def audit_append(
    *, tenant_id: int, actor: str, action: str, target: str = "", data: dict | None = None
) -> AuditEntry:
    """Append an entry to the tenant's chain, in the current transaction (one of its own when
    there is none: the chain's lock lasts until the commit)."""
    data_text = details_json(data or {})
    with transaction.atomic(savepoint=False):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, tenant_id])
        last = (
            AuditEntry.objects.filter(tenant_id=tenant_id).order_by("-seq").values_list("seq", "hash").first()
        )
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
        at = timezone.now()
        actor, target = (actor or "system")[:150], target[:200]
        body = canonical(seq=seq, at=at, actor=actor, action=action, target=target, data=data_text)
        return AuditEntry.objects.create(
            tenant_id=tenant_id, seq=seq, created_at=at, actor=actor, action=action, target=target, data=data_text,
            prev_hash=prev_hash, hash=chain_hash(prev_hash, body),
        )  # fmt: skip


def audit_allow_erase(*, tenant_ids: list[int]) -> None:
    """Let the current transaction delete these tenants' chains, with the tenants themselves:
    the one way entries go (the trigger refuses every other UPDATE or DELETE)."""
    if not connection.in_atomic_block:
        raise RuntimeError("erase audit chains only inside the transaction that deletes their tenants")
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('studio.audit_erase', %s, true)", [",".join(map(str, tenant_ids))])


@dataclass(frozen=True)
class Verification:
    entries: int  # how many were checked
    last_hash: str
    broken_seq: int | None = None  # the first entry that does not hold
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_seq is None


def _entries(tenant_id: int) -> Iterator[AuditEntry]:
    return AuditEntry.objects.filter(tenant_id=tenant_id).order_by("seq").iterator(chunk_size=2000)


def audit_verify(*, tenant_id: int) -> Verification:
    """Walk the tenant's chain from the first entry; name the first one that does not hold: a
    gap in the numbering (an entry removed), a previous hash that is not the one before it (an
    entry removed or inserted), or a hash that its content does not give (an entry changed)."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for entry in _entries(tenant_id):
        if entry.seq != expected_seq:
            return Verification(count, prev_hash, expected_seq, f"entry #{expected_seq} is missing")
        if entry.prev_hash != prev_hash:
            return Verification(count, prev_hash, entry.seq, "it does not follow the entry before it")
        body = canonical(seq=entry.seq, at=entry.created_at, actor=entry.actor, action=entry.action,
                         target=entry.target, data=entry.data)  # fmt: skip
        if chain_hash(prev_hash, body) != entry.hash:
            return Verification(
                count, prev_hash, entry.seq, "its content does not give its hash (it was changed)"
            )
        prev_hash, expected_seq, count = entry.hash, expected_seq + 1, count + 1
    return Verification(count, prev_hash)
