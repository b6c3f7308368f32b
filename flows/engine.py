"""Advancing runs: which steps are ready, branching and joins, completion, retries, leases.

The rules, in one place:

- Every executable node of a run has one StepRun, created with the run (``pending``).
- A step is *resolved* when it succeeded, failed, was skipped or cancelled. When all of a
  step's incoming edges come from resolved steps it is decided: it runs if at least one
  incoming edge is *active* (its source succeeded — or failed into its ``error`` output —
  and activated that edge's handle), otherwise it is skipped, and skipping propagates.
- These decisions are taken in the transaction that resolved the predecessor, with the run
  row locked (``select_for_update``), so two steps finishing at once cannot both start (or
  both miss) a join. Cheap pure nodes run right there, each still checkpointed as its own
  StepRun; the others are enqueued after commit.
- A worker claims a step with a compare-and-set (queued → running) that carries a lease,
  and finishes it with another (running + same lease → succeeded). A redelivered task finds
  nothing to claim; a worker that died leaves a lease that runs out, and the sweeper re-queues
  the step. So delivery is at least once and effects, keyed by the step's idempotency key,
  happen once.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any

import jsonschema
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from flows.budget import spend_statement
from flows.graph import CompiledGraph
from flows.models import (
    RUN_FINISHED,
    RUN_RETRYABLE,
    STEP_ACTIVE,
    Flow,
    FlowVersion,
    Run,
    RunStatus,
    StepRun,
    StepStatus,
    steps_totals,
)
from flows.nodes import CHILD_RUN_TYPES, NodeContext, NodeError, NodeResult, NodeType, get_type
from flows.nodes.base import CapabilityRefused
from flows.policies import approval_wait, policy_for_step
from studio.celery import send_tasks
from studio.governance.audit import audit_append, audit_later, audit_later_statement, json_digest, user_label
from studio.governance.redaction import trace_redactor
from studio.realtime import group_name, publish_on_commit
from studio.rows import (
    Columns,
    Trip,
    WritePlan,
    db_values,
    insert,
    instances,
    packed_transaction,
    select_list,
    write_plan,
)
from studio.tenants.models import Tenant

log = logging.getLogger(__name__)

LEASE_MARGIN_S = float(settings.STEP_LEASE_MARGIN_S)
STALE_QUEUED_S = float(settings.STEP_STALE_QUEUED_S)
MAX_BACKOFF_S = 300.0


class InputError(Exception):
    """Run inputs that do not match the trigger's input schema."""

    def __init__(self, details: list[dict]) -> None:
        super().__init__(details[0]["message"] if details else "invalid inputs")
        self.details = details


# -- graphs of runs -------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _compiled_version(version_id: int) -> CompiledGraph:
    return CompiledGraph.from_doc(FlowVersion.objects.only("graph").get(pk=version_id).graph)


_draft_graphs: dict[int, CompiledGraph] = {}


def compiled_graph(run: Run) -> CompiledGraph:
    """The run's graph, compiled once per process (versions are immutable; drafts are copied)."""
    if run.version_id is not None:
        return _compiled_version(run.version_id)
    graph = _draft_graphs.get(run.pk)
    if graph is None:
        graph = _keep_draft_graph(run.pk, CompiledGraph.from_doc(run.draft_graph))
    return graph


def _keep_draft_graph(run_id: int, graph: CompiledGraph) -> CompiledGraph:
    if len(_draft_graphs) > 256:
        _draft_graphs.clear()
    _draft_graphs[run_id] = graph
    return graph


def node_type_of(graph: CompiledGraph, node_id: str) -> NodeType:
    node_type = get_type(graph.nodes[node_id]["type"])
    if node_type is None:  # validated at publish; a type removed since is a clear failure
        raise NodeError(f"unknown node type {graph.nodes[node_id]['type']!r}")
    return node_type


def step_key(run_id: int, node_id: str) -> str:
    """The step's idempotency key: stable across redeliveries and retries of the same step."""
    return hashlib.sha256(f"afs:{run_id}:{node_id}".encode()).hexdigest()[:32]


# -- starting runs --------------------------------------------------------------------------


def check_inputs(graph: CompiledGraph, inputs: Any) -> None:
    if not isinstance(inputs, dict):
        raise InputError([{"field": "inputs", "message": "inputs must be a JSON object"}])
    schema = graph.config(graph.trigger_id).get("input_schema") if graph.trigger_id else None
    if not schema:
        return
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(inputs), key=lambda e: list(e.path))
    if errors:
        raise InputError([
            {"field": "inputs" + "".join(f".{p}" for p in e.absolute_path), "message": e.message} for e in errors
        ])  # fmt: skip


def run_create(
    *, flow: Flow, version: FlowVersion | None, inputs: dict, trigger: str, user=None, api_key=None,
    idempotency_key: str = "", parent_step: StepRun | None = None, item_index: int | None = None,
    started: bool = False, insert_steps: bool = True,
) -> tuple[Run, list[StepRun]]:  # fmt: skip
    """A run with a pending StepRun per executable node; ``started`` marks it running at once
    (``run_start``), otherwise it stays queued until ``run_launch``. Without ``insert_steps`` the
    steps are left for the caller to write (``run_start``: launched first, then inserted)."""
    graph = _compiled_version(version.pk) if version else CompiledGraph.from_doc(flow.draft)
    check_inputs(graph, inputs)
    run_timeout = graph.config(graph.trigger_id).get("run_timeout_s") if graph.trigger_id else None
    now = timezone.now()
    run = Run(
        tenant_id=flow.tenant_id, flow=flow, version=version, draft_graph=None if version else flow.draft,
        inputs=inputs, trigger=trigger, created_by=user, api_key=api_key, idempotency_key=idempotency_key,
        parent_step=parent_step, item_index=item_index,
        status=RunStatus.RUNNING if started else RunStatus.QUEUED, started_at=now if started else None,
        deadline_at=now + timedelta(seconds=run_timeout) if run_timeout else None,
    )  # fmt: skip
    insert([run])
    run.tenant = flow.tenant  # already loaded by the caller: spare the engine a query
    if version is None:
        _keep_draft_graph(run.pk, graph)  # the run's copy is this very document: compile it once
    steps = new_steps(run, graph)
    if insert_steps:
        insert(steps)
    return run, steps


def new_steps(run: Run, graph: CompiledGraph) -> list[StepRun]:
    """A pending StepRun per executable node of a run (not saved yet)."""
    return [
        StepRun(run=run, node_id=nid, node_type=graph.nodes[nid]["type"], idempotency_key=step_key(run.pk, nid),
                timeout_s=node_timeout(graph, nid))
        for nid in graph.executable
    ]  # fmt: skip


def node_timeout(graph: CompiledGraph, node_id: str) -> float:
    return float(graph.config(node_id).get("timeout_s", node_type_of(graph, node_id).default_timeout_s))


def run_launch(run: Run, steps: list[StepRun] | None = None, trip: Trip | None = None) -> None:
    """Make a run's trigger ready. Inside a transaction, with the run locked or just created;
    ``steps`` (all of them, just created) spares reading them back, and when they are not in the
    database yet (``run_create`` without ``insert_steps``) they are inserted as the launch leaves
    them; ``trip``: the transaction ends with the launch. Launching twice is a no-op: the trigger
    is no longer pending the second time."""
    graph = compiled_graph(run)
    advance = Advance(run, graph, run_changed=run.status == RunStatus.QUEUED, trip=trip)
    if run.status == RunStatus.QUEUED:
        run.status, run.started_at = RunStatus.RUNNING, timezone.now()
    if steps is not None:
        advance.steps = {step.node_id: step for step in steps}
        advance.complete = True
        advance.unsaved = any(step._state.adding for step in steps)
    if graph.trigger_id is not None and advance.step(graph.trigger_id).status != StepStatus.PENDING:
        return
    advance.audit("run.started", f"run:{run.pk}", run_started_details(run), actor=run_actor(run))
    if graph.trigger_id is None:
        advance.fail_run({"message": "the flow has no trigger"})
    else:
        advance.make_ready(graph.trigger_id)
    advance.finish()


def run_start(
    *, flow: Flow, version: FlowVersion | None, inputs: dict, trigger: str = "manual",
    on_created: Callable[[Run], None] | None = None, **kwargs,
) -> Run:  # fmt: skip
    """Create and start a run in one transaction (nobody else sees it before commit, so no lock);
    its first outside-world steps are enqueued on commit. ``on_created(run)`` is called inside
    the transaction before anything is published or enqueued: its own on-commit hooks run first."""
    with packed_transaction() as trip:  # two round trips: the run; then its steps, launched
        run, steps = run_create(flow=flow, version=version, inputs=inputs, trigger=trigger, started=True,
                                insert_steps=False, **kwargs)  # fmt: skip
        if on_created is not None:
            on_created(run)
        run_launch(run, steps, trip=trip)
    return run


# -- advancing --------------------------------------------------------------------------------


@dataclass
class Advance:
    """One transaction's worth of decisions for a locked run."""

    run: Run
    graph: CompiledGraph
    steps: dict[str, StepRun] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    to_enqueue: list[StepRun] = field(default_factory=list)
    worklist: deque = field(default_factory=deque)
    # True when ``steps`` holds every step of the run (a run just created): no need to ask the DB.
    complete: bool = False
    draining: bool = False
    run_changed: bool = False  # tokens, cost or status moved: the run row needs writing
    waits: list[tuple[StepRun, Callable]] = field(default_factory=list)  # steps' wait set-ups, run last
    spent: tuple[Decimal, int] = (Decimal(0), 0)  # model spending of the steps recorded here (budget)
    trip: Trip | None = None  # the transaction, when ``finish`` is the last thing it does
    unsaved: bool = False  # ``steps`` (all of them) are not written yet: ``finish`` inserts them
    audits: list[list] = field(default_factory=list)  # audit entries (``audit_later``), written with the rest
    status_before: str = ""  # the run's status when this transaction began

    def __post_init__(self) -> None:
        self.status_before = self.run.status

    @cached_property
    def traced(self) -> Callable[[Any], Any]:
        """What this run's trace records for people goes through the tenant's trace rules."""
        return trace_redactor(self.run.tenant.settings)

    def audit(self, action: str, target: str, data: dict, actor: str = "system:engine") -> None:
        """An audit entry, recorded with this transaction's writes and chained within seconds."""
        self.audits.append(audit_later(tenant_id=self.run.tenant_id, actor=actor, action=action, target=target,
                                       data=data))  # fmt: skip

    def load(self, node_ids) -> None:
        missing = [] if self.complete else [nid for nid in node_ids if nid not in self.steps]
        if missing:
            self.steps.update(steps_of(self.run.pk, missing))

    def step(self, node_id: str) -> StepRun:
        self.load([node_id])
        return self.steps[node_id]

    def mark(self, step: StepRun) -> None:
        self.steps[step.node_id] = step
        self.dirty.add(step.node_id)

    def resolved(self, node_id: str) -> None:
        """A step just got its final status: decide what follows it. Inline steps resolve inside
        the drain loop; their successors join the worklist instead of recursing (a chain of
        hundreds of inline nodes must not grow the stack)."""
        self.worklist.extend(self.graph.successors(node_id))
        if not self.draining:
            self._drain()

    def make_ready(self, node_id: str) -> None:
        step = self.step(node_id)
        node_type = node_type_of(self.graph, node_id)
        if node_type.inline:
            self.execute_inline(step, node_type)
        else:
            step.status = StepStatus.QUEUED
            step.queued_at = timezone.now()
            self.mark(step)
            self.to_enqueue.append(step)

    def _edge_active(self, edge: dict) -> bool:
        source = self.steps[edge["source"]]
        return source.status in (StepStatus.SUCCEEDED, StepStatus.FAILED) and _took(edge, source)

    def _drain(self) -> None:
        self.draining = True
        try:
            while self.worklist:
                if self.run.status in RUN_FINISHED:
                    return
                self._decide(self.worklist.popleft())
        finally:
            self.draining = False

    def _decide(self, node_id: str) -> None:
        """Run, skip, or leave waiting one step whose predecessor just resolved."""
        self.load([node_id])
        step = self.steps.get(node_id)
        if step is None or step.status != StepStatus.PENDING:
            return
        preds = self.graph.predecessors(node_id)
        if any(self.steps[p].status in STEP_ACTIVE for p in preds if p in self.steps):
            return  # a join still waiting for an input
        unknown = [p for p in preds if p not in self.steps]
        # A join of many branches is visited once per branch: ask cheaply whether the others are
        # done, and read their rows only once they all are (not once per branch).
        if (
            unknown
            and StepRun.objects.filter(run=self.run, node_id__in=unknown, status__in=STEP_ACTIVE).exists()
        ):
            return
        self.load(unknown)
        if any(self._edge_active(e) for e in self.graph.incoming[node_id] if e["source"] in self.steps):
            self.make_ready(node_id)
        else:
            step.status = StepStatus.SKIPPED
            step.finished_at = timezone.now()
            self.mark(step)
            self.worklist.extend(self.graph.successors(node_id))

    def execute_inline(self, step: StepRun, node_type: NodeType) -> None:
        started = time.perf_counter()
        step.status = StepStatus.RUNNING
        step.attempt += 1
        step.started_at = timezone.now()
        try:
            ctx = node_context(self.run, self.graph, step, self.steps_for_context(step.node_id))
            result = node_type.execute(ctx)
            step.inputs = self.traced(ctx.recorded_inputs) or None
        except NodeError as exc:
            self.step_failed(step, exc, elapsed_ms=_ms(started))
            return
        self.step_succeeded(step, result, elapsed_ms=_ms(started))

    def steps_for_context(self, node_id: str) -> dict[str, StepRun]:
        needed = context_nodes(self.graph, node_id)
        self.load(needed)
        return {nid: self.steps[nid] for nid in needed if nid in self.steps}

    def step_succeeded(self, step: StepRun, result: NodeResult, *, elapsed_ms: float | None = None) -> None:
        now = timezone.now()
        step.status = StepStatus.SUCCEEDED
        step.output = result.output
        step.handles = list(result.handles)
        step.error = None
        step.finished_at = now
        step.latency_ms = elapsed_ms if elapsed_ms is not None else _since_ms(step.started_at, now)
        step.tokens_in, step.tokens_out = result.tokens_in, result.tokens_out
        step.cost_usd = Decimal(result.cost_usd)
        step.model = result.model or ""
        step.confidence = result.confidence
        step.lease_token, step.lease_expires_at, step.retry_at = "", None, None
        if step.node_type not in CHILD_RUN_TYPES:  # those only repeat their children's spending
            # Counted for the budget with this checkpoint; the run's totals are summed when it ends.
            cost, tokens = self.spent
            self.spent = (cost + Decimal(result.cost_usd), tokens + result.tokens_in + result.tokens_out)
        self.mark(step)
        self.resolved(step.node_id)

    def step_failed(self, step: StepRun, error: NodeError, *, elapsed_ms: float | None = None) -> None:
        """Retry, fall back, take the error output, or fail the run — in that order."""
        now = timezone.now()
        config = self.graph.config(step.node_id)
        node_type = node_type_of(self.graph, step.node_id)
        message = self.traced(error.message)  # what people read of the failure
        detail = {"message": message, "retryable": error.retryable}
        if error.details is not None:
            detail["details"] = self.traced(error.details)
        step.attempts = [*(step.attempts or []), {
            "attempt": step.attempt, "error": message,
            "started_at": step.started_at.isoformat() if step.started_at else None, "finished_at": now.isoformat(),
        }]  # fmt: skip
        step.lease_token, step.lease_expires_at = "", None
        max_attempts = (config.get("retry") or {}).get("max_attempts", 1)
        if error.retryable and step.attempt < max_attempts and not node_type.inline:
            backoff = retry_delay(step.attempt, (config.get("retry") or {}).get("backoff_s", 1))
            step.status = StepStatus.QUEUED
            step.error = detail
            step.retry_at = now + timedelta(seconds=backoff)
            self.mark(step)
            self.to_enqueue.append(step)
            return
        if "fallback" in config:
            outputs = node_type.output_handles(config)
            fallback = NodeResult(output=config["fallback"]["output"], handles=outputs[:1])
            self.step_succeeded(step, fallback, elapsed_ms=elapsed_ms)
            step.error = {**detail, "fallback": True}  # succeeded, but say why it used the fallback
            return
        step.status = StepStatus.FAILED
        step.error = detail
        step.finished_at = now
        step.latency_ms = elapsed_ms if elapsed_ms is not None else _since_ms(step.started_at, now)
        step.retry_at = None
        handled = node_type.can_fail and any(
            (e.get("sourceHandle") or "out") == "error" for e in self.graph.outgoing[step.node_id]
        )
        step.handles = ["error"] if handled else []
        self.mark(step)
        if handled:
            self.resolved(step.node_id)
        else:
            self.fail_run({"node": step.node_id, "message": message})

    def fail_run(self, error: dict, status: str = RunStatus.FAILED) -> None:
        self.run_changed = True
        self.run.status = status
        self.run.error = error
        self.run.finished_at = timezone.now()

    def finish(self) -> None:
        """Write what changed, enqueue what became ready, and close the run if nothing is left.
        What it reads comes first (other steps' rows, which its writes do not touch), then its
        writes go as one query string, with the transaction's COMMIT when it has a ``trip``."""
        if self.run.status in RUN_FINISHED:
            self._cancel_leftovers()
        changed = [self.steps[nid] for nid in self.dirty]
        if self.run.status not in RUN_FINISHED and not self._anything_left():
            self.run.status = RunStatus.SUCCEEDED
            self.run.outputs = self._outputs()
            self.run.finished_at = timezone.now()
            self.run_changed = True
        if self.run.status in RUN_FINISHED:
            self._sum_totals()
        else:
            status = RunStatus.RUNNING if self._anything_running() else RunStatus.WAITING
            self.run_changed |= status != self.run.status
            self.run.status = status
        if self.run.status in RUN_FINISHED and self.status_before not in RUN_FINISHED:
            self.audit("run.ended", f"run:{self.run.pk}", run_ended_details(self.run))
        cost, tokens = self.spent
        also = [audit_later_statement(self.audits)] if self.audits else []  # more for the steps' query string
        if cost or tokens:
            also.append(
                spend_statement(
                    tenant_id=self.run.tenant_id, run_id=self.run.pk, cost_usd=cost, tokens=tokens
                )
            )
        if self.run_changed:
            also.append((_SAVE_RUN.sql, _SAVE_RUN.params(self.run)))
        waits = [(step, set_up) for step, set_up in self.waits if step.status == StepStatus.WAITING]
        if self.trip is not None and not waits:
            self.trip.commit_with_next()
        if self.unsaved:
            insert(list(self.steps.values()), also=also)
        else:
            save_steps(changed, also=also)
        for step, set_up in waits:  # not cancelled with its run meanwhile; after the engine's writes
            set_up(self.run, step)
        if self.to_enqueue and self.run.status not in RUN_FINISHED:
            enqueue_on_commit(self.graph, self.to_enqueue)
        if self.run.status in RUN_FINISHED and self.run.parent_step_id:
            transaction.on_commit(lambda run_id=self.run.pk: _tasks().child_run_finished_task.delay(run_id))
        publish_on_commit(group_name("run", self.run.pk), run_event(self.run, changed))
        if _STEPS_RECORDED_HOOKS:
            ended = [s for s in changed if s.status not in STEP_ACTIVE]
            if ended or self.run.status in RUN_FINISHED:
                transaction.on_commit(lambda run=self.run: _steps_recorded(run, ended))

    def _cancel_leftovers(self) -> None:
        now = timezone.now()
        parked: list[int] = []  # waiting steps that wait on something else than child runs
        if not self.unsaved:
            active = StepRun.objects.filter(run=self.run, status__in=STEP_ACTIVE).exclude(
                node_id__in=self.dirty
            )
            for step in active:
                self.steps[step.node_id] = step
        for nid, step in self.steps.items():
            if step.status in STEP_ACTIVE:
                if step.status == StepStatus.WAITING:
                    for child in Run.objects.filter(parent_step=step).exclude(status__in=RUN_FINISHED):
                        transaction.on_commit(lambda cid=child.pk: _tasks().run_cancel_task.delay(cid))
                    if "version_id" not in (step.state or {}):
                        parked.append(step.pk)
                step.status = StepStatus.CANCELLED
                step.finished_at = now
                step.lease_token, step.lease_expires_at = "", None
                self.dirty.add(nid)
        self.to_enqueue.clear()
        if parked:
            for hook in _WAIT_CANCELLED_HOOKS:
                hook(parked)

    def _load_all(self) -> None:
        if not self.complete:
            with connection.cursor() as cursor:
                cursor.execute(_OTHER_STEPS_SQL, [self.run.pk, list(self.steps)])
                for row in cursor.fetchall():
                    step = _STEP.instance(row)
                    self.steps[step.node_id] = step
            self.complete = True

    def _anything_left(self) -> bool:
        if any(s.status in STEP_ACTIVE for s in self.steps.values()):
            return True
        self._load_all()  # nothing active among the steps at hand: look at the rest, once
        return any(s.status in STEP_ACTIVE for s in self.steps.values())

    def _anything_running(self) -> bool:
        """Whether any step is queued or running (else the run only waits: on children, on people)."""
        if self.to_enqueue:
            return True
        running = (StepStatus.QUEUED, StepStatus.RUNNING)
        if any(self.steps[nid].status in running for nid in self.dirty):
            return True
        if self.complete:
            return any(step.status in running for step in self.steps.values())
        return (
            StepRun.objects.filter(run=self.run, status__in=running).exclude(node_id__in=self.dirty).exists()
        )

    def _sum_totals(self) -> None:
        """The run's tokens and cost: the sum of its steps (a map step holds its children's)."""
        self._load_all()
        self.run.tokens_in, self.run.tokens_out, self.run.cost_usd = steps_totals(self.steps.values())

    def _outputs(self) -> Any:
        outputs = [
            s for s in self.steps.values() if s.node_type == "output" and s.status == StepStatus.SUCCEEDED
        ]
        merged: dict = {}
        for step in sorted(outputs, key=lambda s: (s.finished_at, s.pk)):
            if isinstance(step.output, dict):
                merged.update(step.output)
            else:
                merged[step.node_id] = step.output
        return merged


_WAIT_CANCELLED_HOOKS: list[Callable[[list[int]], None]] = []


def on_waits_cancelled(hook: Callable[[list[int]], None]) -> Callable[[list[int]], None]:
    """Register ``hook(step_ids)``, called inside the transaction that cancels waiting steps (a
    run cancelled, failed or timed out while a review was open), so whoever set up the wait
    can close it at once. How the inbox learns of cancellations without flows importing it."""
    _WAIT_CANCELLED_HOOKS.append(hook)
    return hook


_STEPS_RECORDED_HOOKS: list[Callable[[Run, list[StepRun]], None]] = []


def on_steps_recorded(hook: Callable[[Run, list[StepRun]], None]) -> Callable[[Run, list[StepRun]], None]:
    """Register ``hook(run, steps)``, called after a transaction that ended steps (succeeded,
    failed, skipped, cancelled) or the run commits, with the run as it then stands: how telemetry
    counts without flows importing it. A hook that raises is logged; the engine goes on."""
    _STEPS_RECORDED_HOOKS.append(hook)
    return hook


def _steps_recorded(run: Run, steps: list[StepRun]) -> None:
    for hook in _STEPS_RECORDED_HOOKS:
        try:
            hook(run, steps)
        except Exception:
            log.exception("a steps-recorded hook failed for run %s", run.pk)


STEP_FIELDS = [
    "status", "handles", "attempt", "attempts", "inputs", "output", "error", "confidence", "queued_at",
    "started_at", "finished_at", "latency_ms", "tokens_in", "tokens_out", "cost_usd", "model", "lease_token",
    "lease_expires_at", "retry_at", "state",
]  # fmt: skip
RUN_FIELDS = [
    "status",
    "outputs",
    "error",
    "started_at",
    "finished_at",
    "tokens_in",
    "tokens_out",
    "cost_usd",
]


@dataclass(frozen=True)
class _Update:
    """An UPDATE of some fields of a model by id, and its parameters for an instance."""

    sql: str
    plan: WritePlan

    @classmethod
    def of(cls, model: type, names: list[str]) -> _Update:
        quote = connection.ops.quote_name
        fields = [model._meta.get_field(name) for name in names]
        sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        return cls(f"UPDATE {quote(model._meta.db_table)} SET {sets} WHERE id = %s", write_plan(fields))

    def params(self, instance: Any) -> list[Any]:
        return [*db_values(self.plan, instance), instance.pk]


_SAVE_STEP = _Update.of(StepRun, STEP_FIELDS)
_SAVE_RUN = _Update.of(Run, RUN_FIELDS)


def save_steps(steps: list[StepRun], also: list[tuple[str, list]] = ()) -> None:
    """Write the checkpoint of changed steps, the engine's hottest write: a few steps (a worker
    step and its successors) as one UPDATE each in a single query string, one round trip; many
    with executemany, whose pipeline waits on the server a few times. Django's bulk_update
    spent more time building CASE expressions than PostgreSQL running them. ``also``: more
    statements for the same query string (counting the steps' spending)."""
    statements = list(also)
    with connection.cursor() as cursor:
        if len(steps) <= _SAVE_IN_ONE_STRING:
            statements[:0] = [(_SAVE_STEP.sql, _SAVE_STEP.params(step)) for step in steps]
        else:
            cursor.executemany(_SAVE_STEP.sql, [_SAVE_STEP.params(step) for step in steps])
        if statements:
            cursor.execute(
                ";".join(sql for sql, _ in statements), [p for _, params in statements for p in params]
            )


# Up to this many steps go in one query string; beyond, binding the parameters client-side costs
# more than executemany's extra waits (a chain of 200 inline steps saved at once).
_SAVE_IN_ONE_STRING = 8


def retry_delay(attempt: int, base_s: float) -> float:
    """Exponential backoff with full jitter, capped (and always far below the broker's visibility timeout)."""
    return min(MAX_BACKOFF_S, base_s * (2 ** (attempt - 1))) * random.uniform(0.5, 1.0)


def _took(edge: dict, source: StepRun) -> bool:
    """Whether the edge's source step activated the output handle the edge leaves from."""
    return (edge.get("sourceHandle") or "out") in (source.handles or [])


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _since_ms(started, now) -> float | None:
    return round((now - started).total_seconds() * 1000, 3) if started else None


def _tasks():
    from flows import tasks

    return tasks


def enqueue_on_commit(graph: CompiledGraph, steps: list[StepRun]) -> None:
    jobs = []
    now = timezone.now()
    for step in steps:
        countdown = max(0.0, (step.retry_at - now).total_seconds()) if step.retry_at else 0
        jobs.append(([step.pk, step.run_id], node_type_of(graph, step.node_id).queue, countdown))

    def send() -> None:
        task = _tasks().step_execute_task
        send_tasks(task, [(args, queue) for args, queue, countdown in jobs if not countdown])
        for args, queue, countdown in jobs:
            if countdown:  # a retry's backoff: Celery holds it until then (seconds, not the long waits)
                task.apply_async(args=args, queue=queue, countdown=countdown)

    transaction.on_commit(send)


def run_event(run: Run, steps: list[StepRun]) -> dict:
    return {
        "type": "run.update",
        "run": {"id": run.pk, "status": run.status},
        "steps": [step_summary(s) for s in steps],
    }


def step_summary(step: StepRun) -> dict:
    return {
        "node_id": step.node_id, "status": step.status, "attempt": step.attempt, "handles": step.handles,
        "latency_ms": step.latency_ms, "tokens_in": step.tokens_in, "tokens_out": step.tokens_out,
        "cost_usd": str(step.cost_usd), "error": step.error,
    }  # fmt: skip


# -- node context -----------------------------------------------------------------------------


def context_nodes(graph: CompiledGraph, node_id: str) -> set[str]:
    """The steps whose outputs a node can see: those its templates name, and its predecessors
    when it reads the upstream output. Most model and HTTP steps need none read back."""
    needed = set(graph.references[node_id])
    if node_type_of(graph, node_id).uses_upstream:
        needed |= set(graph.predecessors(node_id))
    return needed


def node_context(run: Run, graph: CompiledGraph, step: StepRun, known: dict[str, StepRun]) -> NodeContext:
    node = graph.nodes[step.node_id]
    config = node.get("config") or {}
    # A failed step's error is there for the nodes on its error path: nodes.<id>.error.message.
    outputs = {
        nid: {"output": s.output} if s.status == StepStatus.SUCCEEDED else {"output": None, "error": s.error}
        for nid, s in known.items()
        if s.status in (StepStatus.SUCCEEDED, StepStatus.FAILED)
    }
    upstream = None
    for edge in graph.incoming[step.node_id]:
        source = known.get(edge["source"])
        if source is not None and _took(edge, source):
            upstream = source.output
            break
    tenant = run.tenant
    return NodeContext(
        run=run, step=step, tenant=tenant, node=node, config=config,
        variables={"input": run.inputs, "nodes": outputs, "tenant": {"settings": tenant.settings or {}}},
        upstream_output=upstream, timeout_s=node_timeout(graph, step.node_id),
        granted_capabilities=frozenset(run.flow.granted_capabilities or []),
    )  # fmt: skip


# -- executing a step on a worker ---------------------------------------------------------------


_STEP = Columns.of(StepRun, "s")
# A test run's graph copy and the flow's draft are not needed per step (compiled graphs are
# cached per process): leaving them out spares decoding a large JSON document at every step.
_RUN = Columns.of(Run, "r", defer=["draft_graph"])
_FLOW = Columns.of(Flow, "f", defer=["draft"])
_TENANT = Columns.of(Tenant, "t")
# What changes on a run while its steps execute; the rest (inputs, version, parent…) never does.
_RUN_MOVING = Columns.of(Run, "r", only=RUN_FIELDS)

_RUN_CONTEXT_SQL = (
    f"SELECT {select_list(_RUN, _FLOW, _TENANT)} FROM {_RUN.table} "
    f"JOIN {_FLOW.table} ON f.id = r.flow_id JOIN {_TENANT.table} ON t.id = r.tenant_id WHERE r.id = %s"
)
_LOCK_RUN_SQL = _RUN_CONTEXT_SQL + " FOR UPDATE OF r"
_STEPS_SQL = f"SELECT {_STEP.sql} FROM {_STEP.table} WHERE s.run_id = %s AND s.node_id = ANY(%s)"
_RELOCK_RUN_SQL = (
    f"SELECT {_RUN_MOVING.sql} FROM {_RUN_MOVING.table} WHERE r.id = %(run)s FOR UPDATE; "
    f"SELECT {_STEP.sql} FROM {_STEP.table} WHERE s.run_id = %(run)s AND s.node_id = ANY(%(nodes)s)"
)
_RELOCK_RUN_ALL_SQL = _RELOCK_RUN_SQL.replace(" AND s.node_id = ANY(%(nodes)s)", "")
# A run of at most this many steps is read whole when a step finishes: the few extra rows cost
# less than the round trips that deciding its successors and its end would otherwise make.
WHOLE_RUN_STEPS = 12
_OTHER_STEPS_SQL = f"SELECT {_STEP.sql} FROM {_STEP.table} WHERE s.run_id = %s AND NOT s.node_id = ANY(%s)"
_RUN_NOW_SQL = (
    f"SELECT {_RUN_MOVING.sql} FROM {_RUN_MOVING.table} WHERE r.id = %(run)s; "
    f"SELECT {_STEP.sql} FROM {_STEP.table} WHERE s.run_id = %(run)s ORDER BY s.id"
)
# queued → running with a fresh lease, unless it is an early duplicate of a delayed retry (its
# own message will come); the run's status comes back with the step. The claim's commit does not
# wait for its WAL flush (one query string, its own transaction): were PostgreSQL to crash before
# the flush, the step would be queued again and re-run under the same idempotency key, as after
# a lost worker; and the step's finish, which does wait, flushes the claim before it.
_CLAIM_SQL = f"""
    SET LOCAL synchronous_commit = off;
    UPDATE {_STEP.table} SET status = %(running)s, lease_token = %(token)s, started_at = %(now)s,
        attempt = s.attempt + 1, retry_at = NULL,
        lease_expires_at = %(now)s + make_interval(secs => s.timeout_s + %(margin)s)
    WHERE s.id = %(step)s AND s.status = %(queued)s
        AND (s.retry_at IS NULL OR s.retry_at <= %(now)s + interval '1 second')
    RETURNING {_STEP.sql}, (SELECT r.status FROM {_RUN.table} WHERE r.id = s.run_id)
"""  # fmt: skip

_CLAIM_WITH_CONTEXT_SQL = f"{_CLAIM_SQL}; {_RUN_CONTEXT_SQL.replace('%s', '%(run)s')}"

# Per process: the rows of runs whose steps this worker executes (see ``run_context``).
RUN_CONTEXT_TTL_S = 2.0
_run_contexts: dict[int, tuple[float, tuple]] = {}


def _run_from(row) -> Run:
    run, flow, tenant = instances(row, _RUN, _FLOW, _TENANT)
    run.flow, run.tenant = flow, tenant
    return run


def _run_row(sql: str, run_id: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_id])
        row = cursor.fetchone()
    if row is None:
        raise Run.DoesNotExist(f"run {run_id} does not exist")
    return row


def lock_run(run_id: int) -> Run:
    """The run, locked for this transaction: every decision about a run's steps is taken under
    this lock (finishing, resuming, cancelling, retrying, re-queuing), so they never interleave."""
    return _run_from(_run_row(_LOCK_RUN_SQL, run_id))


def relock_run(run: Run, node_ids=None) -> dict[str, StepRun]:
    """``lock_run`` for a run already at hand (from ``run_context``): lock its row and bring
    what moves up to date, without reading its flow and tenant again; then, in a statement of
    its own (a fresh snapshot, taken under the lock) sent in the same round trip, some of its
    steps by node id, or all of them when ``node_ids`` is None."""
    with connection.cursor() as cursor:
        if node_ids is None:
            cursor.execute(_RELOCK_RUN_ALL_SQL, {"run": run.pk})
        else:
            cursor.execute(_RELOCK_RUN_SQL, {"run": run.pk, "nodes": list(node_ids)})
        row = cursor.fetchone()
        if row is None:
            raise Run.DoesNotExist(f"run {run.pk} does not exist")
        cursor.nextset()
        steps = [_STEP.instance(values) for values in cursor.fetchall()]
    _set_moving(run, row)
    return {step.node_id: step for step in steps}


def run_now(run: Run) -> list[StepRun]:
    """Bring what moves on ``run`` (status, outputs, error, timings, totals) up to date and
    return all its steps, in one round trip: answering with a run just started, waited for,
    cancelled or retried, without reading again what never changes (its flow, version, inputs)."""
    with connection.cursor() as cursor:
        cursor.execute(_RUN_NOW_SQL, {"run": run.pk})
        row = cursor.fetchone()
        cursor.nextset()
        steps = [_STEP.instance(values) for values in cursor.fetchall()]
    _set_moving(run, row)
    return steps


def _set_moving(run: Run, row) -> None:
    for moving, value in zip(_RUN_MOVING.fields, _RUN_MOVING.converted(row), strict=True):
        setattr(run, moving.attname, value)


def run_context(run_id: int, status: str) -> Run:
    """The run with its flow and tenant, to execute one of its steps, with ``status`` as the
    claim just read it. Read once per process and run, then kept ``RUN_CONTEXT_TTL_S``: a run's
    inputs and graph never change, and a change to the flow's capabilities or the tenant's
    settings reaches steps that start at most that much later. Fresh instances every time
    (threads of a worker must not share them)."""
    row = _kept_run_context(run_id)
    if row is None:
        row = _keep_run_context(run_id, _run_row(_RUN_CONTEXT_SQL, run_id))
    run = _run_from(row)
    run.status = status
    return run


def _kept_run_context(run_id: int) -> tuple | None:
    kept = _run_contexts.get(run_id)
    if kept is None or time.monotonic() - kept[0] > RUN_CONTEXT_TTL_S:
        return None
    return kept[1]


def _keep_run_context(run_id: int, row: tuple) -> tuple:
    if len(_run_contexts) > 1024:
        _run_contexts.clear()
    _run_contexts[run_id] = (time.monotonic(), row)
    return row


def steps_of(run_id: int, node_ids) -> dict[str, StepRun]:
    """Some steps of a run, by node id."""
    with connection.cursor() as cursor:
        cursor.execute(_STEPS_SQL, [run_id, list(node_ids)])
        steps = [_STEP.instance(row) for row in cursor.fetchall()]
    return {step.node_id: step for step in steps}


def step_claim(step_id: int, run_id: int | None = None) -> tuple[StepRun, str] | None:
    """Compare-and-set queued → running with a fresh lease; None when there is nothing to claim.
    With the step's ``run_id`` (its task message carries it), a run this process has not seen
    lately has its context read in the claim's round trip."""
    token = hashlib.sha256(f"{step_id}:{time.time_ns()}:{random.random()}".encode()).hexdigest()[:32]
    params = {
        "step": step_id, "token": token, "now": timezone.now(), "margin": LEASE_MARGIN_S,
        "running": StepStatus.RUNNING, "queued": StepStatus.QUEUED, "run": run_id,
    }  # fmt: skip
    with_context = run_id is not None and _kept_run_context(run_id) is None
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_WITH_CONTEXT_SQL if with_context else _CLAIM_SQL, params)
        cursor.nextset()  # past the SET
        row = cursor.fetchone()
        if with_context and cursor.nextset():
            context = cursor.fetchone()
            if context is not None:
                _keep_run_context(run_id, context)
    if row is None:
        return None
    step = _STEP.instance(row[:-1])
    step.run = run_context(step.run_id, row[-1])
    publish_on_commit(group_name("run", step.run_id), run_event(step.run, [step]))
    return step, token


def step_execute(step_id: int, run_id: int | None = None) -> None:
    """Claim a step, run its node outside any transaction, and record the outcome."""
    claim = step_claim(step_id, run_id)
    if claim is None:
        return
    step, token = claim
    run = step.run
    if run.status in RUN_FINISHED:
        StepRun.objects.filter(pk=step.pk, lease_token=token).update(
            status=StepStatus.CANCELLED, lease_token=""
        )
        return
    graph = compiled_graph(run)
    node_type = node_type_of(graph, step.node_id)
    needed = context_nodes(graph, step.node_id)
    known = steps_of(run.pk, needed) if needed else {}
    started = time.perf_counter()
    ctx = node_context(run, graph, step, known)
    finish = {"run": run, "node_id": step.node_id, "graph": graph}
    policy = policy_for_step(ctx, node_type)
    if policy is not None:  # a person approves first: parked before anything is sent
        try:
            result = approval_wait(ctx, node_type, policy)
        except NodeError as exc:
            step_finish(
                step.pk, token, **finish, error=exc, inputs=ctx.recorded_inputs, elapsed_ms=_ms(started)
            )
            return
        step_finish(
            step.pk, token, **finish, result=result, inputs=ctx.recorded_inputs, elapsed_ms=_ms(started)
        )
        return
    try:
        result = node_type.execute(ctx)
    except NodeError as exc:
        step_finish(step.pk, token, **finish, error=exc, inputs=ctx.recorded_inputs, elapsed_ms=_ms(started))
        return
    except Exception as exc:  # a bug in a node must not leave the step running forever
        log.exception("node %s of run %s crashed", step.node_id, run.pk)
        error = NodeError(f"internal error: {type(exc).__name__}: {exc}")
        step_finish(
            step.pk, token, **finish, error=error, inputs=ctx.recorded_inputs, elapsed_ms=_ms(started)
        )
        return
    step_finish(step.pk, token, **finish, result=result, inputs=ctx.recorded_inputs, elapsed_ms=_ms(started))


def step_finish(
    step_id: int, token: str, *, run: Run, node_id: str, graph: CompiledGraph, result: NodeResult | None = None,
    error: NodeError | None = None, inputs: dict | None = None, elapsed_ms: float | None = None,
) -> bool:  # fmt: skip
    """Record a step's outcome if this worker still holds its lease; False when it lost it."""
    with packed_transaction() as trip:
        # Lock the run first, then read the step in a fresh statement: every change to a running
        # step (cancel, the sweeper's re-queue) is made under this same lock, so what we read holds.
        # Its successors come along: deciding them is the next thing the engine does; a small
        # run comes whole, so that neither its joins nor its end need another read.
        whole = len(graph.executable) <= WHOLE_RUN_STEPS
        steps = relock_run(run, None if whole else [node_id, *graph.successors(node_id)])
        step = steps.get(node_id)
        if (
            step is None
            or step.pk != step_id
            or step.status != StepStatus.RUNNING
            or step.lease_token != token
        ):
            return False  # the lease ran out (someone else runs it now)
        if run.status in RUN_FINISHED:
            return False  # the run was cancelled
        advance = Advance(run, graph, steps=steps, trip=trip, complete=whole)
        step.inputs = advance.traced(inputs) or None
        if error is not None:
            advance.step_failed(step, error, elapsed_ms=elapsed_ms)
            if isinstance(error, CapabilityRefused):
                audit_append(tenant_id=run.tenant_id, actor="system:engine", action="capability.refused",
                             target=f"run:{run.pk}", data={"flow": run.flow.name, "run": run.pk, "node": node_id,
                                                           **(error.details or {})})  # fmt: skip
        elif result.wait:
            _step_wait(advance, step, result)
        else:
            advance.step_succeeded(step, result, elapsed_ms=elapsed_ms)
        if not (result is not None and result.wait) and not isinstance(error, CapabilityRefused):
            _audit_call(advance, node_type_of(graph, node_id), step, result, error)
        advance.finish()
    return True


def _audit_call(advance: Advance, node_type: NodeType, step: StepRun, result: NodeResult | None,
                error: NodeError | None) -> None:  # fmt: skip
    """The audit entry of one execution of a node that reaches outside (a model, a tool, memory):
    what it was, how it went, and digests of what went in and what came back."""
    action = node_type.audit_action_for(advance.graph.config(step.node_id))
    if action is None:
        return  # nothing outside is called (a router deciding by its rules)
    output = result.output if error is None else None
    data = {
        "run": step.run_id, "node": step.node_id, "type": node_type.type, "attempt": step.attempt,
        "outcome": "ok" if error is None else "error", "idempotency_key": step.idempotency_key,
        "inputs_sha256": json_digest(step.inputs), "output_sha256": json_digest(output),
    }  # fmt: skip
    if step.model:
        data.update(
            model=step.model,
            tokens_in=step.tokens_in,
            tokens_out=step.tokens_out,
            cost_usd=str(step.cost_usd),
        )
    if error is not None:
        data["error"] = error.message
    recorded = output if error is None else error.details  # an agent records its tool calls in either
    calls = recorded.get("tool_calls") if isinstance(recorded, dict) else None
    if isinstance(calls, list):  # an agent's tools, each call named with a digest of its input
        data["tool_calls"] = [
            {"name": call.get("name"), "input_sha256": json_digest(call.get("input")), "ok": "error" not in call}
            for call in calls if isinstance(call, dict)
        ]  # fmt: skip
    advance.audit(action, f"run:{step.run_id}/{step.node_id}", data)


def run_actor(run: Run) -> str:
    """Who started a run, as the audit log names actors."""
    if run.created_by_id:
        return user_label(run.created_by)
    if run.api_key_id:
        return f"api-key:{run.api_key.prefix}"
    return "system:engine" if run.parent_step_id else f"system:{run.trigger}"


def run_started_details(run: Run) -> dict:
    return _without_none({
        "run": run.pk, "flow": run.flow_id, "version_id": run.version_id,  # none: a test run of the draft
        "trigger": run.trigger, "parent_step": run.parent_step_id, "inputs_sha256": json_digest(run.inputs),
    })  # fmt: skip


def run_ended_details(run: Run) -> dict:
    return _without_none({
        "run": run.pk, "status": run.status, "tokens_in": run.tokens_in, "tokens_out": run.tokens_out,
        "cost_usd": str(run.cost_usd), "outputs_sha256": json_digest(run.outputs),
        "error": (run.error or {}).get("message"),
    })  # fmt: skip


def _without_none(data: dict) -> dict:
    return {key: value for key, value in data.items() if value is not None}


# -- child runs (map, sub-flow) ---------------------------------------------------------------------


def children_start(ctx: NodeContext, *, flow_ref: dict, inputs: list, concurrency: int) -> NodeResult:
    """Ask the engine to run ``flow_ref`` once per input as child runs; the step waits for them."""
    version_id = (
        FlowVersion.objects.filter(
            flow__tenant=ctx.tenant,
            flow__deleted_at__isnull=True,
            flow_id=flow_ref["id"],
            number=flow_ref["version"],
        )
        .values_list("pk", flat=True)
        .first()
    )
    if version_id is None:
        raise NodeError(f"flow {flow_ref['id']} has no published version {flow_ref['version']}")
    check = _compiled_version(version_id)  # compiled once per process; the children use it too
    for index, item in enumerate(inputs):
        try:
            check_inputs(check, item)
        except InputError as exc:
            raise NodeError(f"item {index}: {exc}", details=exc.details) from None
    state = {
        "version_id": version_id,
        "inputs": inputs,
        "concurrency": max(1, concurrency),
        "total": len(inputs),
    }
    return NodeResult(wait=True, state=state)


def _step_wait(advance: Advance, step: StepRun, result: NodeResult) -> None:
    state = result.state or {}
    step.status = StepStatus.WAITING
    step.lease_token, step.lease_expires_at = "", None
    step.state = {k: v for k, v in state.items() if k != "inputs"}
    advance.mark(step)
    if "version_id" not in state:
        # Another kind of wait (a review): its owner sets it up in this transaction, once the
        # engine's own writes are done (what it creates is then committed at once), and completes
        # the step later through step_resume.
        if result.on_wait is not None:
            advance.waits.append((step, result.on_wait))
        return
    if not state["inputs"]:
        advance.step_succeeded(step, NodeResult(output=[]))
        return
    version_id = state["version_id"]
    # Ids only: the version's graph and the flow's draft are large, and compiled graphs are cached.
    flow_id = FlowVersion.objects.values_list("flow_id", flat=True).get(pk=version_id)
    children = [
        Run(tenant_id=advance.run.tenant_id, flow_id=flow_id, version_id=version_id, inputs=item,
            trigger="map", parent_step=step, item_index=index, created_by_id=advance.run.created_by_id)
        for index, item in enumerate(state["inputs"])
    ]  # fmt: skip
    insert(children)
    graph = _compiled_version(version_id)
    insert([step for child in children for step in new_steps(child, graph)])
    _children_go(step, state["concurrency"])


def _waiting(step_id: int) -> tuple[Advance, StepRun] | None:
    """The run of a waiting step, locked, and the step; None when it waits no more (decided
    already, or its run ended). Call inside a transaction."""
    step = StepRun.objects.filter(pk=step_id).only("run_id").first()
    if step is None:
        return None
    run = lock_run(step.run_id)
    step = StepRun.objects.filter(pk=step_id, status=StepStatus.WAITING).first()
    if step is None or run.status in RUN_FINISHED:
        return None
    advance = Advance(run, compiled_graph(run))
    advance.steps[step.node_id] = step
    return advance, step


def step_resume(step_id: int, *, result: NodeResult | None = None, error: NodeError | None = None) -> bool:
    """Complete a waiting step from outside the engine (a reviewer's decision): the run goes on
    from that step only. False when the step is not waiting any more (decided already)."""
    with transaction.atomic():
        if (waiting := _waiting(step_id)) is None:
            return False
        advance, step = waiting
        if error is not None:
            advance.step_failed(step, error)
        else:
            advance.step_succeeded(step, result or NodeResult())
        advance.finish()
    return True


def step_release(step_id: int, *, approved_under: str) -> bool:
    """A step an approval policy parked goes back to the queue, approved: it runs as it would
    have, once (``policies.policy_for_step`` lets an approved step through). False when it waits
    no more."""
    with transaction.atomic():
        if (waiting := _waiting(step_id)) is None:
            return False
        advance, step = waiting
        step.state = {**(step.state or {}), "approved_under": approved_under}
        step.attempt = max(0, step.attempt - 1)  # being parked was not an attempt at the node
        advance.make_ready(step.node_id)
        advance.finish()
    return True


def _children_go(step: StepRun, limit: int) -> None:
    """Launch the next ``limit`` queued children of a map, in this transaction.

    Done here, under the parent run's lock (parent before child: the one lock order), so two
    children ending at once cannot both pick the same next item, and no extra task hop sits
    between one item ending and the next starting."""
    if limit <= 0:
        return
    children = (
        Run.objects.select_related("flow", "tenant").defer("flow__draft").select_for_update(of=("self",))
        .filter(parent_step=step, status=RunStatus.QUEUED).order_by("item_index")[:limit]
    )  # fmt: skip
    for child in children:
        run_launch(child)


def child_run_finished(child_id: int) -> None:
    """A child run ended: start the next one, or complete the parent step when all have ended.

    Everything is counted from the database, so a repeated notification changes nothing."""
    child = Run.objects.filter(pk=child_id).only("parent_step_id").first()
    if child is None or child.parent_step_id is None:
        return
    with transaction.atomic():
        parent_step = StepRun.objects.only("run_id").get(pk=child.parent_step_id)
        run = lock_run(parent_step.run_id)
        step = StepRun.objects.get(pk=parent_step.pk)
        if step.status != StepStatus.WAITING or run.status in RUN_FINISHED:
            return
        state = step.state or {}
        children = Run.objects.filter(parent_step=step)
        counts = children.aggregate(
            finished=Count("id", filter=Q(status__in=RUN_FINISHED)),
            failed=Count("id", filter=Q(status__in=RUN_FINISHED) & ~Q(status=RunStatus.SUCCEEDED)),
            going=Count("id", filter=~Q(status__in=RUN_FINISHED) & ~Q(status=RunStatus.QUEUED)),
        )
        graph = compiled_graph(run)
        config = graph.config(step.node_id)
        advance = Advance(run, graph)
        advance.steps[step.node_id] = step
        if counts["failed"] and not config.get("continue_on_error"):
            # Fail fast: the items not started yet never start, the running ones are cancelled.
            unfinished = list(children.exclude(status__in=RUN_FINISHED).values_list("pk", flat=True))
            transaction.on_commit(lambda: [_tasks().run_cancel_task.delay(pk) for pk in unfinished])
            failed = (
                children.exclude(status=RunStatus.SUCCEEDED)
                .filter(status__in=RUN_FINISHED)
                .order_by("item_index")
            )
            first = failed.first()
            message = (
                f"item {first.item_index} {first.status}: {(first.error or {}).get('message', '')}".strip()
            )
            advance.step_failed(step, NodeError(message, details={"failed_items": counts["failed"]}))
        elif counts["finished"] == state.get("total"):
            results = [
                c.outputs if c.status == RunStatus.SUCCEEDED else {"error": c.error, "status": c.status}
                for c in children.order_by("item_index").only("outputs", "status", "error")
            ]
            output = results[0] if step.node_type == "subflow" else results
            tokens = children.aggregate(t_in=Sum("tokens_in"), t_out=Sum("tokens_out"), cost=Sum("cost_usd"))
            advance.step_succeeded(step, NodeResult(output=output, tokens_in=tokens["t_in"] or 0,
                                                    tokens_out=tokens["t_out"] or 0,
                                                    cost_usd=tokens["cost"] or Decimal(0)))  # fmt: skip
        else:
            _children_go(step, state.get("concurrency", 1) - counts["going"])
            return
        advance.finish()


# -- cancel, retry, replay, sweeping ------------------------------------------------------------


def run_cancel(run_id: int) -> bool:
    """Cancel a run: queued steps never start, running ones are dropped at their next checkpoint."""
    with transaction.atomic():
        run = lock_run(run_id)
        if run.status in RUN_FINISHED:
            return False
        advance = Advance(run, compiled_graph(run))
        advance.fail_run({"message": "cancelled"}, status=RunStatus.CANCELLED)
        advance.finish()
    return True


def run_retry(run_id: int) -> bool:
    """Re-run a failed run from its failed steps; steps that succeeded keep their outputs."""
    with transaction.atomic():
        run = lock_run(run_id)
        if run.status not in RUN_RETRYABLE:
            return False
        StepRun.objects.filter(run=run).exclude(status=StepStatus.SUCCEEDED).update(
            status=StepStatus.PENDING, attempt=0, handles=[], error=None, output=None, lease_token="",
            lease_expires_at=None, retry_at=None, queued_at=None, started_at=None, finished_at=None, state=None,
        )  # fmt: skip
        run.status, run.error, run.finished_at, run.outputs = RunStatus.RUNNING, None, None, None
        graph = compiled_graph(run)
        advance = Advance(run, graph, run_changed=True)
        done = list(StepRun.objects.filter(run=run, status=StepStatus.SUCCEEDED))
        for step in done:
            advance.steps[step.node_id] = step
        if not done and graph.trigger_id:
            advance.make_ready(graph.trigger_id)
        for step in done:
            advance.worklist.extend(graph.successors(step.node_id))
        advance._drain()
        advance.finish()
    return True


def steps_recover(now=None) -> dict:
    """The sweeper: re-queue steps of lost workers and lost messages; time out overdue runs."""
    now = now or timezone.now()
    expired = list(StepRun.objects.filter(status=StepStatus.RUNNING, lease_expires_at__lt=now)
                   .values_list("pk", "run_id", "lease_token")[:500])  # fmt: skip
    requeued = []
    for step_id, run_id, token in expired:
        with transaction.atomic():  # under the run's lock, like every change to a running step
            lock_run(run_id)
            if StepRun.objects.filter(pk=step_id, status=StepStatus.RUNNING, lease_token=token).update(
                status=StepStatus.QUEUED, lease_token="", lease_expires_at=None, queued_at=now
            ):
                requeued.append(step_id)
    stale = StepRun.objects.filter(status=StepStatus.QUEUED).filter(
        Q(retry_at__lt=now - timedelta(seconds=STALE_QUEUED_S))
        | Q(retry_at__isnull=True, queued_at__lt=now - timedelta(seconds=STALE_QUEUED_S))
    )
    requeued += list(stale.values_list("pk", flat=True)[:500])
    for step in StepRun.objects.filter(pk__in=requeued).select_related("run"):
        queue = node_type_of(compiled_graph(step.run), step.node_id).queue
        _tasks().step_execute_task.apply_async(args=[step.pk, step.run_id], queue=queue)
    overdue = list(Run.objects.filter(status__in=[RunStatus.RUNNING, RunStatus.WAITING, RunStatus.QUEUED],
                                      deadline_at__lt=now).values_list("pk", flat=True)[:100])  # fmt: skip
    for run_id in overdue:
        with transaction.atomic():
            run = lock_run(run_id)
            if run.status not in RUN_FINISHED:
                advance = Advance(run, compiled_graph(run))
                advance.fail_run(
                    {"message": "the run took longer than its time limit"}, status=RunStatus.TIMED_OUT
                )
                advance.finish()
    return {"requeued": len(requeued), "lease_expired": len(expired), "timed_out": len(overdue)}
