"""Run history retention: a tenant keeps its runs for ``keep_days`` days after they started.

Set per tenant in Settings → Run history (``settings["runs"]["keep_days"]``), or for every tenant
that sets none by ``STUDIO_RUNS_KEEP_DAYS`` (0, the default: runs are kept). The beat job
(``tasks.runs_retention_task``) removes, in bounded rounds of short transactions, the ended
top-level runs that started before the cutoff, with everything that belongs to them: their
steps, their child runs (map and sub-flow, at any depth) with theirs, and what other apps keep
about those runs (``on_runs_purged``: the inbox's review tasks). A run that has not ended is
kept however old it is. Each round writes one audit entry per tenant (``runs.purged``); what the
audit log already says about those runs (approvals, refusals) stays in its chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from flows.models import RUN_FINISHED, Run, StepRun
from studio.governance.audit import audit_append
from studio.tenants.models import Tenant

KEEP_DAYS_MAX = 3650
DEFAULT_BATCH = 500  # top-level runs per transaction (their children come along)

_RUN = connection.ops.quote_name(Run._meta.db_table)
_STEP = connection.ops.quote_name(StepRun._meta.db_table)
_ENDED = sorted(RUN_FINISHED)

# The oldest ended top-level runs of a tenant that started before the cutoff, locked (skipping
# rows another enforcer or a retry holds), and all their descendants.
_DOOMED_SQL = f"""
    WITH RECURSIVE roots AS (
        SELECT r.id FROM {_RUN} r
        WHERE r.tenant_id = %(tenant)s AND r.parent_step_id IS NULL AND r.status = ANY(%(ended)s)
            AND r.created_at < %(cutoff)s
        ORDER BY r.created_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED
    ), doomed(id) AS (
        SELECT id FROM roots
        UNION ALL
        SELECT c.id FROM {_RUN} c JOIN {_STEP} s ON s.id = c.parent_step_id JOIN doomed d ON d.id = s.run_id
    )
    SELECT (SELECT count(*) FROM roots), array(SELECT id FROM doomed)
"""  # fmt: skip
_DELETE_SQL = f"""
    WITH steps AS (DELETE FROM {_STEP} WHERE run_id = ANY(%(runs)s) RETURNING 1),
         runs AS (DELETE FROM {_RUN} WHERE id = ANY(%(runs)s) RETURNING 1)
    SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM steps)
"""  # fmt: skip

_PURGE_HOOKS: list[Callable[[list[int]], None]] = []


def on_runs_purged(hook: Callable[[list[int]], None]) -> Callable[[list[int]], None]:
    """Register ``hook(run_ids)``, called in the purge's transaction before those runs and their
    steps are deleted, so apps above the engine delete what they keep about them."""
    _PURGE_HOOKS.append(hook)
    return hook


# -- the rule -----------------------------------------------------------------------------------


def platform_keep_days() -> int | None:
    return settings.STUDIO_RUNS_KEEP_DAYS or None


def own_keep_days(tenant: Tenant) -> int | None:
    return ((tenant.settings or {}).get("runs") or {}).get("keep_days")


def keep_days_of(tenant: Tenant) -> int | None:
    """Days a tenant's runs are kept after they started; None: kept until deleted."""
    return own_keep_days(tenant) or platform_keep_days()


def cutoff_of(tenant: Tenant, now: datetime | None = None) -> datetime | None:
    """Runs that started before this (and ended) are removed; None when nothing is."""
    days = keep_days_of(tenant)
    return (now or timezone.now()) - timedelta(days=days) if days else None


def parse_keep_days(raw: str) -> int | None:
    """What an admin typed: blank follows the platform default; else 1 to 3650 days."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        days = int(raw)
    except ValueError:
        raise ValidationError({"keep_days": f"must be a whole number of days, not {raw[:40]!r}"}) from None
    if not 1 <= days <= KEEP_DAYS_MAX:
        raise ValidationError({"keep_days": f"must be from 1 to {KEEP_DAYS_MAX} days"})
    return days


def expired_count(tenant: Tenant, now: datetime | None = None) -> int:
    """Top-level runs the next pass would remove."""
    cutoff = cutoff_of(tenant, now)
    if cutoff is None:
        return 0
    return Run.objects.filter(
        tenant=tenant, parent_step__isnull=True, status__in=_ENDED, created_at__lt=cutoff
    ).count()


# -- enforcing it ---------------------------------------------------------------------------------


@dataclass
class Purged:
    runs: int = 0  # top-level runs
    all_runs: int = 0  # with their child runs
    steps: int = 0


@dataclass
class RetentionResult:
    runs: int = 0  # top-level runs removed, over every tenant
    more: bool = False  # a tenant's batch was full: there may be more to remove


def purge_tenant_runs(tenant: Tenant, cutoff: datetime, *, batch: int) -> Purged:
    """Remove up to ``batch`` of the tenant's ended top-level runs that started before ``cutoff``,
    with their descendants, in one transaction; audited when anything went."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DOOMED_SQL, {"tenant": tenant.pk, "ended": _ENDED, "cutoff": cutoff, "batch": batch})
        roots, run_ids = cursor.fetchone()
        if not roots:
            return Purged()
        for hook in _PURGE_HOOKS:
            hook(run_ids)
        cursor.execute(_DELETE_SQL, {"runs": run_ids})
        all_runs, steps = cursor.fetchone()
        audit_append(
            tenant_id=tenant.pk, actor="system:retention", action="runs.purged", target="runs",
            data={"runs": roots, "child_runs": all_runs - roots, "steps": steps,
                  "started_before": cutoff.isoformat(), "keep_days": keep_days_of(tenant)},
        )  # fmt: skip
    return Purged(runs=roots, all_runs=all_runs, steps=steps)


def retention_enforce(*, batch: int = DEFAULT_BATCH, now: datetime | None = None) -> RetentionResult:
    """One bounded round over every tenant that keeps its runs for a limited time."""
    tenants = Tenant.objects.all()
    if not platform_keep_days():
        tenants = tenants.filter(settings__runs__has_key="keep_days")
    result = RetentionResult()
    for tenant in tenants.only("pk", "settings"):
        cutoff = cutoff_of(tenant, now)
        if cutoff is None:
            continue
        purged = purge_tenant_runs(tenant, cutoff, batch=batch)
        result.runs += purged.runs
        result.more |= purged.runs >= batch
    return result
