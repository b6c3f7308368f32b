"""ReviewTask: one human decision a waiting approval step is parked on."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from studio.tenants.models import Tenant, TenantOwnedQuerySet


class ReviewStatus(models.TextChoices):
    OPEN = "open"
    CLAIMED = "claimed"
    ESCALATED = "escalated"  # re-assigned after its SLA ran out; still waiting for a decision
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"  # approved with the reviewer's changes
    EXPIRED = "expired"  # the SLA ran out and the step took ``timed_out`` (or failed)
    CANCELLED = "cancelled"  # the run ended (cancelled, timed out) before anyone decided


# Waiting for a human: what the inbox shows as open, what the SLA job scans.
REVIEW_PENDING = (ReviewStatus.OPEN, ReviewStatus.CLAIMED, ReviewStatus.ESCALATED)
# Nobody holds it: what the unread badge counts.
REVIEW_UNCLAIMED = (ReviewStatus.OPEN, ReviewStatus.ESCALATED)
# Decided by a reviewer: the "decided" filter, what metrics time to decision.
REVIEW_DECIDED = (ReviewStatus.APPROVED, ReviewStatus.REJECTED, ReviewStatus.EDITED)


class Decision(models.TextChoices):
    APPROVE = "approve"
    REJECT = "reject"
    EDIT = "edit"
    TIMEOUT = "timeout"


class ReviewTask(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="review_tasks")
    # The inbox sits above the engine (DESIGN.md, "Layout"): it may point at runs and steps.
    flow = models.ForeignKey("flows.Flow", on_delete=models.CASCADE, related_name="review_tasks")
    run = models.ForeignKey("flows.Run", on_delete=models.CASCADE, related_name="review_tasks")
    step = models.ForeignKey("flows.StepRun", on_delete=models.CASCADE, related_name="review_tasks")
    node_id = models.CharField(max_length=63)
    title = models.CharField(max_length=200, blank=True)
    instructions = models.TextField(blank=True)
    # What the reviewer sees and approves: the rendered "data", or the upstream output.
    proposal = models.JSONField(null=True, blank=True)
    context = models.JSONField(null=True, blank=True)  # step inputs shown next to the proposal
    editable_schema = models.JSONField(null=True, blank=True)  # JSON Schema of what may change
    model = models.CharField(max_length=100, blank=True)  # of the upstream step, where known
    confidence = models.FloatField(null=True, blank=True)
    # Why a human must look: "node" (an approval node) or "policy" (with its name).
    reason = models.CharField(max_length=16, default="node")
    policy = models.CharField(max_length=120, blank=True)

    # Who may decide: members with this role (owners and admins always may), or these usernames.
    assigned_role = models.CharField(max_length=16, blank=True)
    assigned_users = models.JSONField(default=list, blank=True)
    quorum = models.PositiveSmallIntegerField(default=1)
    approvals = models.JSONField(default=list, blank=True)  # [{by, user_id, at, comment}] under quorum N

    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.OPEN)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    sla_s = models.PositiveIntegerField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    on_timeout = models.CharField(max_length=16, default="timed_out")  # "escalate" or "timed_out"
    escalate_to = models.CharField(max_length=16, blank=True)
    escalate_sla_s = models.PositiveIntegerField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    decision = models.CharField(max_length=16, choices=Decision.choices, blank=True)
    output = models.JSONField(null=True, blank=True)  # what the step output became
    edited_output = models.JSONField(null=True, blank=True)  # the reviewer's version, when edited
    diff = models.JSONField(null=True, blank=True)  # [{field, before, after}] against the proposal
    comment = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_by_label = models.CharField(max_length=150, blank=True)  # a user, an API key, "system"
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The inbox: a tenant's reviews by status, newest first (also the unread badge count).
            models.Index(fields=["tenant", "status", "-created_at"], name="review_tenant_status"),
            # The SLA job: waiting reviews whose deadline passed.
            models.Index(fields=["due_at"], name="review_due", condition=Q(status__in=REVIEW_PENDING)),
            # Metrics: decided reviews of a tenant over time.
            models.Index(fields=["tenant", "decided_at"], name="review_tenant_decided"),
        ]
        constraints = [
            # One waiting review per step (a retried run may ask again once the first is closed).
            models.UniqueConstraint(
                fields=["step"], name="review_one_pending_per_step", condition=Q(status__in=REVIEW_PENDING)
            ),
        ]

    def __str__(self) -> str:
        return f"review {self.pk} of {self.node_id} in run {self.run_id}"

    @property
    def is_pending(self) -> bool:
        return self.status in REVIEW_PENDING

    @property
    def is_overdue(self) -> bool:
        return self.is_pending and self.due_at is not None and self.due_at < timezone.now()
