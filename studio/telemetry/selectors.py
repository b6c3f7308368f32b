"""The dashboard's figures, computed in PostgreSQL (grouped aggregates and percentiles; no rows
come to Python) over the runs created in a period.

- A run's latency is its wall time, start to finish, over the runs that succeeded: what the
  caller of a flow waits, people's reviews included.
- An action is a step that did something and finished: every executed step but triggers, notes,
  and map and sub-flow steps (they only collect child runs, whose own steps are counted).
  Tokens and cost per action are what the steps recorded; their latency is per node type.
- Review share: approval steps among actions; review wait: how long those steps waited.
- The series: the same figures per bucket of time (runs by when they were created), for the
  dashboard's charts; every bucket of the period is there, empty ones too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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

# The buckets of a period's series: the smallest of these that makes at most ``MAX_POINTS``.
BUCKETS = (
    timedelta(minutes=5), timedelta(minutes=15), timedelta(hours=1), timedelta(hours=3), timedelta(hours=6),
    timedelta(hours=12), timedelta(days=1), timedelta(days=7), timedelta(days=30),
)  # fmt: skip
MAX_POINTS = 48
BUCKET_ORIGIN = datetime(2001, 1, 1, tzinfo=UTC)  # a Monday: weekly buckets start on Mondays

# Both queries group three or four ways at once (GROUPING SETS): per flow, per bucket of the
# series, everything, and (actions) per node type; ``grouping`` says which a row is, one bit per
# grouping column left out (the first column is the highest bit).
_RUNS_SQL = f"""
    SELECT r.flow_id, r.t, GROUPING(r.flow_id, r.t) AS grouping,
        count(*) AS runs,
        count(*) FILTER (WHERE r.status = %(succeeded)s) AS succeeded,
        count(*) FILTER (WHERE r.status IN (%(failed)s, %(timed_out)s)) AS failed,
        count(*) FILTER (WHERE r.status = %(cancelled)s) AS cancelled,
        count(*) FILTER (WHERE r.status IN (%(queued)s, %(running)s, %(waiting)s)) AS active,
        percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (
            ORDER BY extract(epoch FROM r.finished_at - r.started_at) * 1000
        ) FILTER (WHERE r.status = %(succeeded)s AND r.started_at IS NOT NULL) AS latency_ms
    FROM (
        SELECT flow_id, status, started_at, finished_at, date_bin(%(bucket)s, created_at, %(origin)s) AS t
        FROM {Run._meta.db_table}
        WHERE tenant_id = %(tenant)s AND parent_step_id IS NULL AND created_at >= %(since)s
            AND (%(flow)s::bigint IS NULL OR flow_id = %(flow)s)
    ) r
    GROUP BY GROUPING SETS ((r.flow_id), (r.t), ())
"""
_RUNS_BY_FLOW, _RUNS_BY_TIME = 0b01, 0b10

_ACTIONS_SQL = f"""
    SELECT s.node_type, r.flow_id, r.t, GROUPING(s.node_type, r.flow_id, r.t) AS grouping,
        count(*) AS actions,
        count(*) FILTER (WHERE s.status = %(step_failed)s) AS failed,
        coalesce(sum(s.tokens_in + s.tokens_out), 0) AS tokens,
        coalesce(sum(s.cost_usd), 0) AS cost_usd,
        count(*) FILTER (WHERE s.node_type = %(review)s) AS reviews,
        percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY s.latency_ms) AS latency_ms,
        percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY s.latency_ms)
            FILTER (WHERE s.node_type = %(review)s) AS review_wait_ms
    FROM {StepRun._meta.db_table} s JOIN (
        SELECT id, flow_id, date_bin(%(bucket)s, created_at, %(origin)s) AS t
        FROM {Run._meta.db_table}
        WHERE tenant_id = %(tenant)s AND created_at >= %(since)s AND (%(flow)s::bigint IS NULL OR flow_id = %(flow)s)
    ) r ON r.id = s.run_id
    WHERE s.status IN (%(step_succeeded)s, %(step_failed)s) AND NOT s.node_type = ANY(%(not_actions)s)
    GROUP BY GROUPING SETS ((s.node_type), (r.flow_id), (r.t), ())
"""
_ACTIONS_BY_TYPE, _ACTIONS_BY_FLOW, _ACTIONS_BY_TIME = 0b011, 0b101, 0b110


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
    bucket: timedelta = BUCKETS[0]
    series: list[tuple[datetime, Figures]] = field(default_factory=list)  # every bucket, oldest first

    def as_dict(self) -> dict:
        return {
            "since": self.since.isoformat(),
            "flow": self.flow.pk if self.flow else None,
            "overall": self.overall.as_dict(),
            "per_flow": [{"flow": f.pk, "flow_name": f.name, **fig.as_dict()} for f, fig in self.flows],
            "per_node_type": [{"node_type": t, **fig.as_dict()} for t, fig in self.node_types],
            "bucket_seconds": int(self.bucket.total_seconds()),
            "series": [{"start": start.isoformat(), **fig.as_dict()} for start, fig in self.series],
        }


def _pair(values) -> tuple[float | None, float | None]:
    return (values[0], values[1]) if values else (None, None)


def series_bucket(span: timedelta) -> timedelta:
    """The bucket of a series over ``span``: at most ``MAX_POINTS`` of them."""
    for bucket in BUCKETS:
        if span <= bucket * MAX_POINTS:
            return bucket
    return timedelta(days=math.ceil(span / timedelta(days=1) / MAX_POINTS))


def bucket_start(moment: datetime, bucket: timedelta) -> datetime:
    """The start of the bucket holding ``moment``, as PostgreSQL's ``date_bin`` computes it."""
    return BUCKET_ORIGIN + (moment - BUCKET_ORIGIN) // bucket * bucket


def metrics_summary(*, tenant: Tenant, since: datetime | None = None, flow: Flow | None = None) -> Summary:
    """The tenant's figures since ``since`` (default: the last 7 days), overall, per flow, per
    node type and per bucket of time (``series_bucket``); ``flow`` narrows everything to one
    flow. Two queries."""
    now = timezone.now()
    since = since or now - PERIODS[DEFAULT_PERIOD]
    bucket = series_bucket(max(now - since, BUCKETS[0]))
    params = {
        "tenant": tenant.pk, "since": since, "flow": flow.pk if flow else None, "review": REVIEW_TYPE,
        "not_actions": list(NOT_ACTIONS), "step_succeeded": StepStatus.SUCCEEDED, "step_failed": StepStatus.FAILED,
        "bucket": bucket, "origin": BUCKET_ORIGIN, **{status.value: status.value for status in RunStatus},
    }  # fmt: skip
    overall, per_flow, per_type, per_time = Figures(), {}, {}, {}
    with connection.cursor() as cursor:
        cursor.execute(_RUNS_SQL, params)
        for flow_id, t, grouping, runs, succeeded, failed, cancelled, active, latency in cursor.fetchall():
            if grouping == _RUNS_BY_FLOW:
                figures = per_flow.setdefault(flow_id, Figures())
            elif grouping == _RUNS_BY_TIME:
                figures = per_time.setdefault(t, Figures())
            else:
                figures = overall
            figures.runs, figures.succeeded, figures.failed = runs, succeeded, failed
            figures.cancelled, figures.active = cancelled, active
            figures.latency_p50_ms, figures.latency_p95_ms = _pair(latency)
        cursor.execute(_ACTIONS_SQL, params)
        for (
            node_type,
            flow_id,
            t,
            grouping,
            actions,
            failed,
            tokens,
            cost,
            reviews,
            latency,
            wait,
        ) in cursor.fetchall():
            if grouping == _ACTIONS_BY_TYPE:
                figures = per_type.setdefault(node_type, Figures())
                figures.latency_p50_ms, figures.latency_p95_ms = _pair(latency)
            elif grouping == _ACTIONS_BY_FLOW:
                figures = per_flow.setdefault(flow_id, Figures())
            elif grouping == _ACTIONS_BY_TIME:
                figures = per_time.setdefault(t, Figures())
            else:
                figures = overall
            figures.actions, figures.failed_actions, figures.tokens = actions, failed, int(tokens)
            figures.cost_usd, figures.reviews = Decimal(cost), reviews
            figures.review_wait_p50_ms, figures.review_wait_p95_ms = _pair(wait)
    names = Flow.objects.for_tenant(tenant).in_bulk(per_flow)
    flows = sorted(
        ((names[fid], figures) for fid, figures in per_flow.items() if fid in names),
        key=lambda pair: (-pair[1].runs, pair[0].name.lower()),
    )
    node_types = sorted(per_type.items(), key=lambda pair: -pair[1].actions)
    first, last = bucket_start(since, bucket), bucket_start(now, bucket)
    starts = [first + bucket * i for i in range((last - first) // bucket + 1)]
    series = [(start, per_time.get(start) or Figures()) for start in starts]
    return Summary(
        since=since,
        flow=flow,
        overall=overall,
        flows=flows,
        node_types=node_types,
        bucket=bucket,
        series=series,
    )


def reviews_waiting_by_tenant() -> dict[int, int]:
    """Tenant id → reviews waiting for a person (the partial index of pending reviews serves it)."""
    rows = (
        ReviewTask.objects.filter(status__in=REVIEW_PENDING).values_list("tenant_id").annotate(n=Count("id"))
    )
    return dict(rows.order_by())
