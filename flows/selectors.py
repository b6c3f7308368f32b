"""Reads of flows and runs, always scoped to the caller's tenant (another tenant's is a 404)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Min, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone

from flows.graph import graph_capabilities
from flows.models import (
    RUN_FINISHED,
    RUN_RETRYABLE,
    STEP_ACTIVE,
    Flow,
    FlowVersion,
    Run,
    StepRun,
    StepStatus,
    Totals,
    run_totals,
)
from flows.nodes.base import CHILD_RUN_TYPES, capability_granted
from studio.realtime import GroupListener, group_name
from studio.rows import Columns, instances, select_list
from studio.tenants.models import Tenant


def flow_list(*, tenant: Tenant, search: str = "") -> QuerySet[Flow]:
    flows = Flow.objects.for_tenant(tenant).filter(deleted_at__isnull=True).select_related("tenant")
    if search:
        flows = flows.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    return flows


def flow_list_summaries(*, tenant: Tenant, search: str = "") -> QuerySet[Flow]:
    """The tenant's flows for a listing: each with ``latest_version_number`` (one subquery, not a
    query per row), drafts left unread (a listing never shows them)."""
    latest = FlowVersion.objects.filter(flow=OuterRef("pk")).order_by("-number").values("number")[:1]
    return (
        flow_list(tenant=tenant, search=search)
        .defer("draft")
        .annotate(latest_version_number=Subquery(latest))
    )


def flow_get(*, tenant: Tenant, pk: int, with_draft: bool = True) -> Flow:
    """The tenant's flow; ``with_draft=False`` leaves its draft document unread until asked for
    (starting or listing runs: a large draft is hundreds of kilobytes of JSON to decode)."""
    flows = flow_list(tenant=tenant)
    return get_object_or_404(flows if with_draft else flows.defer("draft"), pk=pk)


_FLOW = Columns.of(Flow, "f", defer=["draft"])
_FLOW_TENANT = Columns.of(Tenant, "t")
_LATEST = Columns.of(FlowVersion, "v", defer=["graph"])  # the subquery's row…
_VERSIONS = Columns.of(FlowVersion, "lv", defer=["graph"])  # …from the flow's versions
_FLOW_TO_RUN_SQL = (
    f"SELECT {select_list(_FLOW, _FLOW_TENANT, _LATEST)} FROM {_FLOW.table} "
    f"JOIN {_FLOW_TENANT.table} ON t.id = f.tenant_id "
    f"LEFT JOIN LATERAL (SELECT {_VERSIONS.sql} FROM {_VERSIONS.table} "
    "WHERE lv.flow_id = f.id ORDER BY lv.number DESC LIMIT 1) v ON true "
    "WHERE f.id = %s AND f.tenant_id = %s AND f.deleted_at IS NULL"
)


def flow_to_run(*, tenant: Tenant, pk: int) -> tuple[Flow, FlowVersion | None]:
    """The tenant's flow (draft left unread) and its latest published version (graph left
    unread, None when none is published), in one query: what starting a run through the API
    reads first."""
    with connection.cursor() as cursor:
        cursor.execute(_FLOW_TO_RUN_SQL, [pk, tenant.pk])
        row = cursor.fetchone()
    if row is None:
        raise Http404("No Flow matches the given query.")
    flow, flow_tenant, latest = instances(row, _FLOW, _FLOW_TENANT, _LATEST)
    flow.tenant = flow_tenant
    if latest.pk is None:
        return flow, None
    latest.flow = flow
    return flow, latest


def version_list(*, flow: Flow) -> QuerySet[FlowVersion]:
    return flow.versions.select_related("created_by").defer("graph")


def version_get(*, flow: Flow, number: int) -> FlowVersion:
    return get_object_or_404(flow.versions.all(), number=number)


def flow_list_with_latest_graph(*, tenant: Tenant) -> QuerySet[Flow]:
    """The tenant's flows by name, each with ``latest_graph``: its latest published graph (or
    None), in one query (the capabilities page reads what every flow's nodes need)."""
    latest = FlowVersion.objects.filter(flow=OuterRef("pk")).order_by("-number").values("graph")[:1]
    return flow_list(tenant=tenant).annotate(latest_graph=Subquery(latest)).order_by("name", "pk")


def flow_capability_needs(flow: Flow) -> dict:
    """What the flow's draft and latest version (``flow.latest_graph``) need, and which of that
    is not granted."""
    granted = frozenset(flow.granted_capabilities or [])
    needed: set[str] = set()
    for document in (flow.draft, flow.latest_graph):
        for capabilities in graph_capabilities(document or {}).values():
            needed |= capabilities
    return {
        "needed": sorted(needed),
        "missing": sorted(c for c in needed if not capability_granted(c, granted)),
    }


def version_latest(*, flow: Flow) -> FlowVersion | None:
    """The latest published version, without its graph (the engine compiles it once per process)."""
    return flow.versions.defer("graph").order_by("-number").first()


def version_graph_resolver(*, tenant: Tenant):
    """(flow id, version number) → graph, for the validator's sub-flow checks, within the tenant."""

    def resolve(flow_id: int, number: int) -> dict | None:
        version = (
            FlowVersion.objects.filter(
                flow__tenant=tenant, flow__deleted_at__isnull=True, flow_id=flow_id, number=number
            )
            .only("graph")
            .first()
        )
        return version.graph if version else None

    return resolve


# Graph documents (a test run's copy, the flow's draft, the version's graph) can be large and
# no run payload shows them: reading a run leaves them out.
RUN_DOCUMENTS = ("draft_graph", "flow__draft", "version__graph")


def run_list(*, flow: Flow, status: str | None = None, before: int | None = None) -> QuerySet[Run]:
    """The flow's top-level runs, newest first; ``before``: only those older than that run id."""
    runs = (
        flow.runs.filter(parent_step__isnull=True)
        .select_related("version")
        .defer("draft_graph", "version__graph")
    )
    if status:
        runs = runs.filter(status=status)
    if before:  # the runs after it in this order (the index on flow and created_at serves both)
        created = Subquery(Run.objects.filter(pk=before).values("created_at")[:1])
        runs = runs.filter(Q(created_at__lt=created) | Q(created_at=created, pk__lt=before))
    return runs.order_by("-created_at", "-pk")


def run_history(*, tenant) -> dict:
    """How many top-level runs the tenant keeps, and when the oldest started."""
    return Run.objects.filter(tenant=tenant, parent_step__isnull=True).aggregate(
        runs=Count("id"), oldest=Min("created_at")
    )


def totals_so_far(runs: list[Run]) -> dict[int, Totals]:
    """By run id, the totals of those of ``runs`` that have not ended (``run_totals``: the sum
    of their steps so far), in one query; ended runs carry theirs."""
    going = [run for run in runs if not run.is_finished]
    if not going:
        return {}
    steps: dict[int, list[StepRun]] = {run.pk: [] for run in going}
    for step in StepRun.objects.filter(run__in=going).only("run_id", "tokens_in", "tokens_out", "cost_usd"):
        steps[step.run_id].append(step)
    return {run.pk: run_totals(run, steps[run.pk]) for run in going}


def run_get(*, tenant: Tenant, pk: int) -> Run:
    runs = Run.objects.for_tenant(tenant).select_related("flow", "version", "tenant").defer(*RUN_DOCUMENTS)
    return get_object_or_404(runs, pk=pk)


def run_steps(*, run: Run) -> QuerySet[StepRun]:
    return run.steps.order_by("id")


CHILD_RUNS_SHOWN = 50
TRIGGER_WORDS = {
    "manual": "Started by hand", "api": "Started through the API", "webhook": "Started by a webhook",
    "schedule": "Started on its schedule", "replay": "A replay", "map": "A child run",
}  # fmt: skip


@dataclass
class StepTrace:
    step: StepRun
    child_runs: list[Run]  # the first CHILD_RUNS_SHOWN, in item order
    child_counts: dict[str, int]  # all of them, by status

    @property
    def branch(self) -> str:
        """The output handles the step took, when that is news (not the plain ``out``)."""
        handles = self.step.handles or []
        return ", ".join(handles) if handles not in ([], ["out"]) else ""

    @property
    def waiting_for(self) -> str:
        """What a waiting step waits for, when it is a person (an approval node or a policy)."""
        state = self.step.state or {}
        if self.step.status != StepStatus.WAITING or not state.get("review"):
            return ""
        return (
            f"approval under the {state['policy']} policy" if state.get("policy") else "a reviewer's decision"
        )


@dataclass
class RunTrace:
    """What a run's trace page shows: the run, its steps in the order they ran (those that did
    not run yet after, in graph order) with the child runs of map and sub-flow steps, and the
    run it is a child of."""

    run: Run
    steps: list[StepTrace]
    parent_run_id: int | None

    @property
    def duration_ms(self) -> float | None:
        run = self.run
        if run.started_at is None:
            return None
        return ((run.finished_at or timezone.now()) - run.started_at).total_seconds() * 1000

    @property
    def started_how(self) -> str:
        run = self.run
        how = TRIGGER_WORDS.get(run.trigger, run.trigger)
        if run.created_by:
            return f"{how} by {run.created_by.get_username()}"
        if run.api_key:
            return f"{how} with the API key “{run.api_key.name}”"
        return how

    @cached_property
    def totals(self) -> Totals:
        return run_totals(self.run, [t.step for t in self.steps])

    @property
    def done_count(self) -> int:
        return sum(1 for t in self.steps if t.step.status not in STEP_ACTIVE)

    @property
    def can_retry(self) -> bool:
        return self.run.status in RUN_RETRYABLE


def run_trace(*, tenant: Tenant, pk: int, shown: Callable[[Any], Any]) -> RunTrace:
    """The run's trace, its data (the run's inputs and outputs, its steps' inputs and outputs)
    as ``shown`` makes it for the reader (``trace_view_redactor``): the instances are for display
    and never saved."""
    run = get_object_or_404(
        Run.objects.for_tenant(tenant)
        .select_related("flow", "version", "created_by", "api_key")
        .annotate(parent_run_id=F("parent_step__run_id")),
        pk=pk,
    )
    steps = list(run.steps.order_by("id"))
    document = (run.version.graph if run.version else run.draft_graph) or {}
    graph_order = {node["id"]: index for index, node in enumerate(document.get("nodes", []))}
    steps.sort(
        key=lambda s: (
            s.started_at is None,
            s.started_at or run.created_at,
            graph_order.get(s.node_id, 0),
            s.pk,
        )
    )
    run.inputs, run.outputs = shown(run.inputs), shown(run.outputs)
    traced = []
    for step in steps:
        step.inputs, step.output = shown(step.inputs), shown(step.output)
        children, counts = [], {}
        if step.node_type in CHILD_RUN_TYPES and step.status != StepStatus.PENDING:
            child_runs = Run.objects.filter(parent_step=step)
            counts = dict(child_runs.values_list("status").annotate(n=Count("id")).order_by())
            if counts:
                children = list(child_runs.order_by("item_index", "id")[:CHILD_RUNS_SHOWN])
        traced.append(StepTrace(step=step, child_runs=children, child_counts=counts))
    return RunTrace(run=run, steps=traced, parent_run_id=run.parent_run_id)


def flow_by_webhook_token(*, token: str) -> Flow:
    """The flow a webhook starts (its draft left unread: hooks run published versions)."""
    return get_object_or_404(
        Flow.objects.select_related("tenant").filter(deleted_at__isnull=True).defer("draft"),
        webhook_token=token,
    )


_RUN_STATUS = Columns.of(Run, "r", only=["status"])
_RUN_STATUS_SQL = f"SELECT {_RUN_STATUS.sql} FROM {_RUN_STATUS.table} WHERE r.id = %s"


def run_status(run_id: int) -> str | None:
    """A run's status as it stands, None when it is gone: one short statement, asked on every
    ``?wait`` call (the ORM's compiling cost more than PostgreSQL answering)."""
    with connection.cursor() as cursor:
        cursor.execute(_RUN_STATUS_SQL, [run_id])
        row = cursor.fetchone()
    return row[0] if row else None


def listen_from_start(listeners: list[GroupListener]) -> Callable[[Run], None]:
    """For ``run_request``'s ``on_created``: subscribe to the run's group when its transaction
    commits, ahead of its first events and tasks (the engine registers those later), and put the
    listener in ``listeners`` for ``run_wait``. Redis failing here costs the wait its head start,
    never the run its tasks."""

    def subscribe(run: Run) -> None:
        transaction.on_commit(lambda: listeners.append(GroupListener(group_name("run", run.pk))), robust=True)

    return subscribe


def run_wait(*, run: Run, timeout_s: float, listener: GroupListener | None = None) -> bool:
    """Block until the run ends or ``timeout_s`` passes; True when it ended. ``run`` as its
    caller last saw it (a small flow often ended inline, before anyone waits). Woken by the
    run's live events, which say its status; the database is asked once after subscribing, and
    again whenever no event came for a second (in case one was dropped). ``listener``: one on
    the run's group, subscribed before anything about the run was published or sent
    (``listen_from_start``): no event can have been missed, so the database is not asked first."""
    if run.status in RUN_FINISHED:
        if listener is not None:
            listener.close()
        return True
    deadline = time.monotonic() + timeout_s
    ask = listener is None
    with listener or GroupListener(group_name("run", run.pk)) as listener:
        event: dict | None = None
        while True:
            if event is not None:
                status = (event.get("run") or {}).get("status")
            else:
                status = run_status(run.pk) if ask else run.status
            ask = True
            if status in RUN_FINISHED:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            event = listener.next_event(min(remaining, 1.0))
