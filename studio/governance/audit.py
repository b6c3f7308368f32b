"""The hash-chained audit log: ``audit_append`` writes, ``audit_verify`` checks a tenant's chain.

Each entry's hash is SHA-256 over the previous entry's hash, a new line, and the entry's
canonical form: a JSON array of its sequence number, time, actor, action, target and details,
the details themselves as stored (canonical JSON text: keys sorted, no spaces).
Appends to one tenant's chain take a transaction-scoped advisory lock, so they line up without
gaps or forks; the entry is written in the caller's transaction (it exists if the change does).
Data is redacted with the built-in rules before it is stored; callers pass names and digests,
never secret values.

What is audited, appended at once (admin-rate events): publishing and deleting flows,
capability grants and refusals, tenant settings, API keys, credentials, members and roles,
review decisions, memory purges, retention policies and run history purges.

Appended within seconds (``audit_later``, from a run's hot path): runs started and ended, and
every model, tool and memory call of a step, with digests of what went in and came out. The
run's transaction records them as pending entries, without the chain's lock; the beat job
``audit_chain_pending`` chains them in the order they were recorded, so a tenant's runs never
wait on one another for the log. Until then they are rows of their own (``AuditPending``),
outside the chain: the audit page and ``audit_verify`` say how many.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from studio.governance.models import AuditEntry, AuditPending
from studio.governance.redaction import redact_json

_django_default = DjangoJSONEncoder().default
GENESIS = "0" * 64
_LOCK_CLASS = 0x41554449  # "AUDI": the advisory lock space of audit chains (one key per tenant)


def canonical(*, seq: int, at, actor: str, action: str, target: str, data: str) -> str:
    return json.dumps(
        [seq, at.isoformat(), actor, action, target, data], separators=(",", ":"), ensure_ascii=False
    )


def details_json(data: dict) -> str:
    """The details as the log keeps them: redacted with the built-in rules, canonical JSON text."""
    return _canonical_json(redact_json(data))


def _canonical_json(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def user_label(user) -> str:
    """How the log names a person acting (``system`` when nobody is)."""
    return user.get_username() if user is not None else "system"


def json_digest(value: Any) -> str:
    """SHA-256 of a JSON value's canonical text (keys sorted, no spaces): what the log keeps of
    the inputs and outputs of model and tool calls."""
    try:
        text = orjson.dumps(
            value, default=_django_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        )
    except TypeError:  # an integer beyond 64 bits
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder).encode()
    return hashlib.sha256(text).hexdigest()


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
        seq, prev_hash = _chain_head(tenant_id)
        entry = _link(tenant_id, seq, prev_hash, at=timezone.now(), actor=actor, action=action, target=target,
                      data=data_text)  # fmt: skip
        entry.save(force_insert=True)
        return entry


def _chain_head(tenant_id: int) -> tuple[int, str]:
    """Lock the tenant's chain for this transaction; the next sequence number and the hash to
    follow."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, tenant_id])
    last = AuditEntry.objects.filter(tenant_id=tenant_id).order_by("-seq").values_list("seq", "hash").first()
    return (last[0] + 1, last[1]) if last else (1, GENESIS)


def _link(tenant_id: int, seq: int, prev_hash: str, *, at, actor: str, action: str, target: str,
          data: str) -> AuditEntry:  # fmt: skip
    actor, target = (actor or "system")[:150], target[:200]
    body = canonical(seq=seq, at=at, actor=actor, action=action, target=target, data=data)
    return AuditEntry(
        tenant_id=tenant_id, seq=seq, created_at=at, actor=actor, action=action, target=target, data=data,
        prev_hash=prev_hash, hash=chain_hash(prev_hash, body),
    )  # fmt: skip


# -- entries from a run's hot path ------------------------------------------------------------------

_PENDING = connection.ops.quote_name(AuditPending._meta.db_table)
_PENDING_INSERT = f"INSERT INTO {_PENDING} (tenant_id, created_at, actor, action, target, data) VALUES "
_TAKE_PENDING_SQL = (
    f"DELETE FROM {_PENDING} WHERE id IN (SELECT id FROM {_PENDING} WHERE tenant_id = %s ORDER BY id "
    "LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, created_at, actor, action, target, data"
)
CHAIN_BATCH = 2000


def audit_later(
    *,
    tenant_id: int,
    actor: str,
    action: str,
    target: str = "",
    data: dict | None = None,
    free_text: tuple[str, ...] = ("error",),
) -> list:
    """An entry to be chained within seconds, as a row for ``audit_later_statement``, which the
    caller sends with its own writes (the engine's checkpoint): it exists if the change does.
    Only the values under ``free_text`` are redacted: the rest of what the engine records are
    ids, names, digests and numbers (redacting those took 21 µs of the 25 an entry cost)."""
    details = dict(data or {})
    for key in free_text:
        if key in details:
            details[key] = redact_json(details[key])
    text = _canonical_json(details)
    return [tenant_id, timezone.now(), (actor or "system")[:150], action, target[:200], text]


def audit_later_statement(rows: list[list]) -> tuple[str, list]:
    """One INSERT of ``audit_later`` rows: (SQL, parameters)."""
    sql = _PENDING_INSERT + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    return sql, [value for row in rows for value in row]


@dataclass(frozen=True)
class Chained:
    entries: int  # pending entries chained
    more: bool  # a tenant's batch was full: more may be waiting


def audit_chain_pending(*, batch: int = CHAIN_BATCH, tenant_id: int | None = None) -> Chained:
    """Chain the pending entries of every tenant (or of one), oldest first, up to ``batch`` per
    tenant, each tenant in a transaction of its own under its chain's lock."""
    if tenant_id is None:
        tenants = list(AuditPending.objects.order_by().values_list("tenant_id", flat=True).distinct())
    else:
        tenants = [tenant_id]
    chained, more = 0, False
    for tenant in tenants:
        with transaction.atomic():
            seq, prev_hash = _chain_head(tenant)
            with connection.cursor() as cursor:
                cursor.execute(_TAKE_PENDING_SQL, [tenant, batch])
                rows = sorted(cursor.fetchall())
            links = []
            for _, at, actor, action, target, data in rows:
                link = _link(
                    tenant, seq, prev_hash, at=at, actor=actor, action=action, target=target, data=data
                )
                links.append(link)
                seq, prev_hash = seq + 1, link.hash
            AuditEntry.objects.bulk_create(links)
        chained += len(links)
        more |= len(links) >= batch
    return Chained(chained, more)


def audit_pending_count(*, tenant_id: int) -> int:
    return AuditPending.objects.filter(tenant_id=tenant_id).count()


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


# -- export ------------------------------------------------------------------------------------

EXPORT_CHUNK = 2000


def audit_export_start(*, tenant_id: int, actor: str, from_seq: int) -> int:
    """Chain what runs recorded in the last seconds and record the export itself
    (``audit.exported``); the last entry the export covers: that one."""
    audit_chain_pending(tenant_id=tenant_id)
    return audit_append(
        tenant_id=tenant_id, actor=actor, action="audit.exported", data={"from": from_seq}
    ).seq


def audit_export_chunk(*, tenant_id: int, after_seq: int, to_seq: int) -> tuple[bytes, int]:
    """The next entries of an export as JSON Lines, and the last seq in them (``after_seq`` when
    none is left). Each line holds everything its hash covers, so the chain can be checked
    without the studio: ``hash = sha256(prev_hash + "\n" + body)``, where body is the compact
    JSON array ``[seq, created_at, actor, action, target, data]`` (``canonical``), and each
    ``prev_hash`` is the hash of the line before it (the first entry's is 64 zeros)."""
    entries = AuditEntry.objects.filter(tenant_id=tenant_id, seq__gt=after_seq, seq__lte=to_seq).order_by(
        "seq"
    )
    lines, last = [], after_seq
    for entry in entries[:EXPORT_CHUNK]:
        lines.append(orjson.dumps({
            "seq": entry.seq, "created_at": entry.created_at.isoformat(), "actor": entry.actor,
            "action": entry.action, "target": entry.target, "data": entry.data,
            "prev_hash": entry.prev_hash, "hash": entry.hash,
        }) + b"\n")  # fmt: skip
        last = entry.seq
    return b"".join(lines), last


def audit_verify_recorded(*, tenant_id: int) -> Verification:
    """``audit_verify`` over everything recorded, the entries runs wrote in the last seconds
    included (chained first)."""
    audit_chain_pending(tenant_id=tenant_id)
    return audit_verify(tenant_id=tenant_id)


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
