"""Flows, their published versions, runs and step runs."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.text import slugify

from studio.tenants.models import ApiKey, Tenant, TenantOwnedQuerySet


def _webhook_token() -> str:
    return secrets.token_urlsafe(24)


SLUG_MAX = 80


def first_free_slug(name: str, taken: set[str]) -> str:
    """``name`` as a slug not in ``taken``: ``name``, ``name-2``, ``name-3``… (``flow`` when
    nothing of the name is left), cut to ``SLUG_MAX``."""
    base = slugify(name).strip("-") or "flow"
    number = 1
    while True:
        suffix = f"-{number}" if number > 1 else ""
        candidate = base[: SLUG_MAX - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        number += 1


class Flow(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=120)
    # Made from the name when the flow is created and kept when it is renamed: what scripts and
    # the command line call it by (``run_flow support-triage``). Unique among a tenant's live flows.
    slug = models.SlugField(max_length=SLUG_MAX)
    description = models.TextField(blank=True)
    # The draft: any well-formed graph document, problems and all. Published versions are frozen copies.
    draft = models.JSONField(default=dict)
    draft_revision = models.PositiveIntegerField(default=1)
    draft_updated_at = models.DateTimeField(auto_now_add=True)
    draft_updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Capabilities an admin granted this flow (e.g. "billing.write", "http:api.example.com"). They
    # live outside the graph on purpose: a builder editing the draft cannot grant them.
    granted_capabilities = models.JSONField(default=list, blank=True)
    webhook_token = models.CharField(max_length=64, unique=True, default=_webhook_token)  # serves hooks/
    webhook_secret = models.TextField(blank=True)  # encrypted HMAC key; empty = signatures not required
    # From the latest published version's trigger, when it is a schedule (see flows/schedules.py).
    schedule_cron = models.CharField(max_length=100, blank=True)
    schedule_next_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            # The flows list: a tenant's live flows, most recently changed first.
            models.Index(
                fields=["tenant", "-updated_at"],
                name="flow_tenant_recent",
                condition=Q(deleted_at__isnull=True),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "slug"], name="flow_unique_slug", condition=Q(deleted_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def webhook_path(self) -> str:
        """Where the flow's webhook trigger listens (``POST``)."""
        return reverse("api:webhook", args=[self.webhook_token])


class FlowVersion(models.Model):
    """A published graph: immutable; its SHA-256 is its identity in the audit trail."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    graph = models.JSONField()
    sha256 = models.CharField(max_length=64)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["flow", "number"], name="flowversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.flow_id} v{self.number}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


RUN_FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT)
RUN_RETRYABLE = (RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT)  # re-run from the failed steps


class Run(models.Model):
    # No index of their own: run_tenant_status and run_flow_recent lead with them (an index less
    # to write for every run).
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="runs", db_index=False)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs", db_index=False)
    version = models.ForeignKey(
        FlowVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    # A builder's test run of the draft keeps its own copy of the graph it ran.
    draft_graph = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=16, default="manual")
    inputs = models.JSONField(default=dict, blank=True)
    outputs = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    parent_step = models.ForeignKey(
        "StepRun", null=True, blank=True, on_delete=models.CASCADE, related_name="child_runs"
    )
    item_index = models.PositiveIntegerField(null=True, blank=True)  # position in the parent map
    idempotency_key = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # A flow's runs, newest first, optionally by status (runs list, dashboard).
            models.Index(fields=["flow", "-created_at"], name="run_flow_recent"),
            models.Index(fields=["tenant", "status", "-created_at"], name="run_tenant_status"),
            # Map bookkeeping: the children of a step, in item order.
            models.Index(
                fields=["parent_step", "item_index"],
                name="run_children",
                condition=Q(parent_step__isnull=False),
            ),
            # The sweeper: runs past their deadline that are still going.
            models.Index(
                fields=["deadline_at"],
                name="run_deadline",
                condition=Q(status__in=["queued", "running", "waiting"]),
            ),
        ]
        constraints = [
            # Start-run idempotency: one run per (flow, key).
            models.UniqueConstraint(
                fields=["flow", "idempotency_key"],
                name="run_unique_idempotency_key",
                condition=~Q(idempotency_key=""),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of flow {self.flow_id}"

    @property
    def is_finished(self) -> bool:
        return self.status in RUN_FINISHED

    @property
    def is_test(self) -> bool:
        return self.version_id is None


class StepStatus(models.TextChoices):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


STEP_ACTIVE = (StepStatus.PENDING, StepStatus.QUEUED, StepStatus.RUNNING, StepStatus.WAITING)


class StepRun(models.Model):
    """One node's execution in a run: its checkpoint."""

    # No index of its own: steprun_unique_node leads with it (an index less to write for every
    # claim and checkpoint of a step).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps", db_index=False)
    node_id = models.CharField(max_length=63)
    node_type = models.CharField(max_length=40)
    status = models.CharField(max_length=16, choices=StepStatus.choices, default=StepStatus.PENDING)
    # Output handles this step activated ("out", a router class, "true"/"false", "error", …).
    handles = models.JSONField(default=list, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    attempts = models.JSONField(default=list, blank=True)  # [{attempt, error, started_at, finished_at}]
    inputs = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    model = models.CharField(max_length=100, blank=True)
    idempotency_key = models.CharField(max_length=64)
    # The claim: who runs it now and until when (a lost worker's lease expires and the step is re-run).
    lease_token = models.CharField(max_length=32, blank=True)
    # The node's timeout, copied when the run is created: a claim sets the lease in one statement.
    timeout_s = models.FloatField(default=300.0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    # Map / sub-flow bookkeeping while child runs are going.
    state = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "node_id"], name="steprun_unique_node")]
        indexes = [
            # The sweeper: running steps whose lease ran out, queued steps whose retry time came.
            models.Index(fields=["lease_expires_at"], name="step_lease", condition=Q(status="running")),
            models.Index(fields=["retry_at"], name="step_retry", condition=Q(status="queued")),
            # Dashboard: per node type latency and cost over time.
            models.Index(fields=["node_type", "finished_at"], name="step_type_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.node_id} of run {self.run_id}"


class MonthlySpend(models.Model):
    """What a tenant's model calls cost in a calendar month (UTC): counted in the transaction that
    records each step, so exactly once, and spread over a few rows (``shard``) per tenant and month
    so that concurrent runs do not queue on one row's lock. ``flows.budget`` reads and writes it."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    month = models.DateField()  # its first day
    shard = models.PositiveSmallIntegerField()
    micro_usd = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "month", "shard"], name="monthly_spend_unique"),
        ]

    def __str__(self) -> str:
        return f"spend of tenant {self.tenant_id} in {self.month:%Y-%m} (shard {self.shard})"


class Totals(NamedTuple):
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


def steps_totals(steps: Iterable[StepRun]) -> Totals:
    """Tokens and cost of some steps. A run's totals are its steps' (a map or sub-flow step holds
    its children's)."""
    steps = list(steps)
    return Totals(
        sum(s.tokens_in for s in steps),
        sum(s.tokens_out for s in steps),
        sum((Decimal(s.cost_usd) for s in steps), Decimal(0)),
    )


def run_totals(run: Run, steps: Iterable[StepRun]) -> Totals:
    """A run's tokens and cost as they stand: written on the run when it ends; until then, the
    sum of its ``steps`` so far (a run waiting for a reviewer has already spent something)."""
    if run.is_finished:
        return Totals(run.tokens_in, run.tokens_out, Decimal(run.cost_usd))
    return steps_totals(steps)
