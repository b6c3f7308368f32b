"""The dashboard's figures, computed in PostgreSQL (grouped aggregates and percentiles; no rows
come to Python) over the runs created in a period.

- A run's latency is its wall time, start to finish, over the runs that succeeded: what the
  caller of a flow waits, people's reviews included.
- An action is a step that did something and finished: every executed step but triggers, notes,
  and map and sub-flow steps (they only collect child runs, whose own steps are counted).
  Tokens and cost per action are what the steps recorded; their latency is per node type.
- Review share: approval steps among actions; review wait: how long those steps waited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from flows.models import Flow, Run, RunStatus, StepRun, StepStatus
from flows.nodes import CHILD_RUN_TYPES
from studio.inbox.models import REVIEW_PENDING, ReviewTask
from studio.tenants.models import Tenant

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_PERIOD = "7d"
NOT_ACTIONS = ("trigger", "note", *CHILD_RUN_TYPES)
REVIEW_TYPE = "approval"

_RUNS_SQL = f"""
    SELECT r.flow_id, GROUPING(r.flow_id) AS everything,
        count(*) AS runs,
        count(*) FILTER (WHERE r.status = %(succeeded)s) AS succeeded,
        count(*) FILTER (WHERE r.status IN (%(failed)s, %(timed_out)s)) AS failed,
        count(*) FILTER (WHERE r.status = %(cancelled)s) AS cancelled,
        count(*) FILTER (WHERE r.status IN (%(queued)s, %(running)s, %(waiting)s)) AS active,
        percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
            ORDER BY extract(epoch FROM r.finished_at - r.started_at) * 1000
        ) FILTER (WHERE r.status = %(succeeded)s AND r.started_at IS NOT NULL) AS latency_ms
    FROM {Run._meta.db_table} r
    WHERE r.tenant_id = %(tenant)s AND r.parent_step_id IS NULL AND r.created_at >= %(since)s
        AND (%(flow)s::bigint IS NULL OR r.flow_id = %(flow)s)
    GROUP BY GROUPING SETS ((r.flow_id), ())
"""

_ACTIONS_SQL = f"""
    SELECT s.node_type, r.flow_id, GROUPING(s.node_type) AS by_flow, GROUPING(r.flow_id) AS by_type,
        count(*) AS actions,
        count(*) FILTER (WHERE s.status = %(step_failed)s) AS failed,
        coalesce(sum(s.tokens_in + s.tokens_out), 0) AS tokens,
        coalesce(sum(s.cost_usd), 0) AS cost_usd,
        count(*) FILTER (WHERE s.node_type = %(review)s) AS reviews,
        percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY s.latency_ms) AS latency_ms,
        percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY s.latency_ms)
            FILTER (WHERE s.node_type = %(review)s) AS review_wait_ms
    FROM {StepRun._meta.db_table} s JOIN {Run._meta.db_table} r ON r.id = s.run_id
    WHERE r.tenant_id = %(tenant)s AND r.created_at >= %(since)s
        AND (%(flow)s::bigint IS NULL OR r.flow_id = %(flow)s)
        AND s.status IN (%(step_succeeded)s, %(step_failed)s) AND NOT s.node_type = ANY(%(not_actions)s)
    GROUP BY GROUPING SETS ((s.node_type), (r.flow_id), ())
"""


@dataclass
class Figures:
    """One line of the dashboard: a flow, a node type, or everything."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    active: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    actions: int = 0
    failed_actions: int = 0
    tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    reviews: int = 0
    review_wait_p50_ms: float | None = None
    review_wait_p95_ms: float | None = None

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.cancelled

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.finished if self.finished else None

    @property
    def error_rate(self) -> float | None:
        """Failed (or timed out) among finished runs; for a node type, failed among its actions."""
        if self.finished:
            return self.failed / self.finished
        return self.failed_actions / self.actions if self.actions else None

    @property
    def tokens_per_action(self) -> float | None:
        return self.tokens / self.actions if self.actions else None

    @property
    def cost_per_1000_actions(self) -> Decimal | None:
        return self.cost_usd * 1000 / self.actions if self.actions else None

    @property
    def review_share(self) -> float | None:
        return self.reviews / self.actions if self.actions else None

    def as_dict(self) -> dict:
        def rounded(value, places=4):
            return None if value is None else round(float(value), places)

        return {
            "runs": self.runs, "succeeded": self.succeeded, "failed": self.failed, "cancelled": self.cancelled,
            "active": self.active, "success_rate": rounded(self.success_rate), "error_rate": rounded(self.error_rate),
            "latency_p50_ms": rounded(self.latency_p50_ms, 1), "latency_p95_ms": rounded(self.latency_p95_ms, 1),
            "actions": self.actions, "tokens": self.tokens, "tokens_per_action": rounded(self.tokens_per_action, 1),
            "cost_usd": str(self.cost_usd), "cost_per_1000_actions_usd": rounded(self.cost_per_1000_actions, 6),
            "reviews": self.reviews, "review_share": rounded(self.review_share),
            "review_wait_p50_ms": rounded(self.review_wait_p50_ms, 1),
            "review_wait_p95_ms": rounded(self.review_wait_p95_ms, 1),
        }  # fmt: skip


@dataclass
class Summary:
    since: datetime
    flow: Flow | None
    overall: Figures
    flows: list[tuple[Flow, Figures]] = field(default_factory=list)
    node_types: list[tuple[str, Figures]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat(),
            "flow": self.flow.pk if self.flow else None,
            "overall": self.overall.as_dict(),
            "per_flow": [{"flow": f.pk, "flow_name": f.name, **fig.as_dict()} for f, fig in self.flows],
            "per_node_type": [{"node_type": t, **fig.as_dict()} for t, fig in self.node_types],
        }


def _pair(values) -> tuple[float | None, float | None]:
    return (values[0], values[1]) if values else (None, None)


def metrics_summary(*, tenant: Tenant, since: datetime | None = None, flow: Flow | None = None) -> Summary:
    """The tenant's figures since ``since`` (default: the last 7 days), overall, per flow and per
    node type; ``flow`` narrows everything to one flow. Two queries."""
    since = since or timezone.now() - PERIODS[DEFAULT_PERIOD]
    params = {
        "tenant": tenant.pk, "since": since, "flow": flow.pk if flow else None, "review": REVIEW_TYPE,
        "not_actions": list(NOT_ACTIONS), "step_succeeded": StepStatus.SUCCEEDED, "step_failed": StepStatus.FAILED,
        **{status.value: status.value for status in RunStatus},
    }  # fmt: skip
    overall, per_flow, per_type = Figures(), {}, {}
    with connection.cursor() as cursor:
        cursor.execute(_RUNS_SQL, params)
        for flow_id, everything, runs, succeeded, failed, cancelled, active, latency in cursor.fetchall():
            figures = overall if everything else per_flow.setdefault(flow_id, Figures())
            figures.runs, figures.succeeded, figures.failed = runs, succeeded, failed
            figures.cancelled, figures.active = cancelled, active
            figures.latency_p50_ms, figures.latency_p95_ms = _pair(latency)
        cursor.execute(_ACTIONS_SQL, params)
        for (
            node_type,
            flow_id,
            by_flow,
            by_type,
            actions,
            failed,
            tokens,
            cost,
            reviews,
            latency,
            wait,
        ) in cursor.fetchall():
            if by_flow and by_type:
                figures = overall
            elif by_flow:  # grouped by flow (node type rolled up)
                figures = per_flow.setdefault(flow_id, Figures())
            else:
                figures = per_type.setdefault(node_type, Figures())
                figures.latency_p50_ms, figures.latency_p95_ms = _pair(latency)
            figures.actions, figures.failed_actions, figures.tokens = actions, failed, int(tokens)
            figures.cost_usd, figures.reviews = Decimal(cost), reviews
            figures.review_wait_p50_ms, figures.review_wait_p95_ms = _pair(wait)
    names = Flow.objects.for_tenant(tenant).in_bulk(per_flow)
    flows = sorted(
        ((names[fid], figures) for fid, figures in per_flow.items() if fid in names),
        key=lambda pair: (-pair[1].runs, pair[0].name.lower()),
    )
    node_types = sorted(per_type.items(), key=lambda pair: -pair[1].actions)
    return Summary(since=since, flow=flow, overall=overall, flows=flows, node_types=node_types)


def reviews_waiting_by_tenant() -> dict[int, int]:
    """Tenant id → reviews waiting for a person (the partial index of pending reviews serves it)."""
    rows = (
        ReviewTask.objects.filter(status__in=REVIEW_PENDING).values_list("tenant_id").annotate(n=Count("id"))
    )
    return dict(rows.order_by())
