"""Reads of the inbox, always scoped to one tenant (another tenant's review is a 404)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Avg, Count, F, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from studio.inbox.models import REVIEW_DECIDED, REVIEW_PENDING, REVIEW_UNCLAIMED, ReviewStatus, ReviewTask
from studio.tenants.models import Tenant

STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    **{status.value: (status.value,) for status in ReviewStatus},
    # Groups after single statuses: "open" means every status still waiting for a decision.
    "open": REVIEW_PENDING,
    "unclaimed": REVIEW_UNCLAIMED,
    "decided": REVIEW_DECIDED,
    "closed": (*REVIEW_DECIDED, ReviewStatus.EXPIRED, ReviewStatus.CANCELLED),
}


def review_list(
    *, tenant: Tenant, status: str | None = None, flow_id: int | None = None,
    assigned_to: AbstractBaseUser | None = None, overdue: bool = False,
) -> QuerySet[ReviewTask]:  # fmt: skip
    """The inbox queue. ``status`` is a status or a group (open, unclaimed, decided, closed);
    ``assigned_to`` keeps what that user holds or is named on."""
    reviews = ReviewTask.objects.for_tenant(tenant).select_related("flow", "claimed_by", "run")
    if status:
        reviews = reviews.filter(status__in=STATUS_FILTERS.get(status, (status,)))
    if flow_id:
        reviews = reviews.filter(flow_id=flow_id)
    if assigned_to is not None:
        name = assigned_to.get_username()
        reviews = reviews.filter(Q(claimed_by=assigned_to) | Q(assigned_users__contains=[name]))
    if overdue:
        reviews = reviews.filter(status__in=REVIEW_PENDING, due_at__lt=timezone.now())
    return reviews.order_by("-created_at", "-id")


def review_get(*, tenant: Tenant, pk: int) -> ReviewTask:
    return get_object_or_404(review_list(tenant=tenant), pk=pk)


def review_unread_count(*, tenant: Tenant | int) -> int:
    """Unclaimed reviews waiting in the tenant's queue: the navigation badge (one indexed count).
    ``tenant`` may be an id: live events count from the review's ``tenant_id`` without loading it."""
    return ReviewTask.objects.for_tenant(tenant).filter(status__in=REVIEW_UNCLAIMED).count()


def review_corrections(
    *, tenant: Tenant, flow_id: int | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Reviewers' edits (proposal → corrected output, with the diff), oldest first: what memory
    write-back and evaluation sets learn from. A plain function on purpose (no HTTP around it)."""
    reviews = ReviewTask.objects.for_tenant(tenant).filter(status=ReviewStatus.EDITED)
    if flow_id:
        reviews = reviews.filter(flow_id=flow_id)
    if since:
        reviews = reviews.filter(decided_at__gte=since)
    return [
        {
            "review": r.pk,
            "flow": r.flow_id,
            "run": r.run_id,
            "step": r.step_id,
            "node_id": r.node_id,
            "proposal": r.proposal,
            "output": r.edited_output,
            "diff": r.diff,
            "comment": r.comment,
            "decided_by": r.decided_by_label,
            "decided_at": r.decided_at,
        }
        for r in reviews.order_by("decided_at", "pk")
    ]


def _seconds(value: timedelta | None) -> float | None:
    return round(value.total_seconds(), 3) if value is not None else None


def _rates(row: dict) -> dict[str, Any]:
    decided = row["approved"] + row["rejected"] + row["edited"]
    return {
        "reviews": row["reviews"], "decided": decided, "approved": row["approved"], "rejected": row["rejected"],
        "edited": row["edited"], "expired": row["expired"],
        "approval_rate": round((row["approved"] + row["edited"]) / decided, 4) if decided else None,
        "rejection_rate": round(row["rejected"] / decided, 4) if decided else None,
        "edit_rate": round(row["edited"] / decided, 4) if decided else None,
        "avg_time_to_claim_s": _seconds(row["to_claim"]), "avg_time_to_decision_s": _seconds(row["to_decision"]),
    }  # fmt: skip


_AGGREGATES = {
    "reviews": Count("id"),
    "approved": Count("id", filter=Q(status=ReviewStatus.APPROVED)),
    "rejected": Count("id", filter=Q(status=ReviewStatus.REJECTED)),
    "edited": Count("id", filter=Q(status=ReviewStatus.EDITED)),
    "expired": Count("id", filter=Q(status=ReviewStatus.EXPIRED)),
    "to_claim": Avg(F("claimed_at") - F("created_at"), filter=Q(claimed_at__isnull=False)),
    "to_decision": Avg(F("decided_at") - F("created_at"), filter=Q(status__in=REVIEW_DECIDED)),
}


def review_metrics(*, tenant: Tenant, flow_id: int | None = None, since: datetime | None = None) -> dict:
    """Reviewer metrics for the dashboard: time to claim, time to decision, approval / rejection /
    edit rates — overall, per flow and per reviewer. Three grouped aggregates, no rows in Python."""
    reviews = ReviewTask.objects.for_tenant(tenant)
    if flow_id:
        reviews = reviews.filter(flow_id=flow_id)
    if since:
        reviews = reviews.filter(created_at__gte=since)
    total = reviews.aggregate(**_AGGREGATES)
    per_flow = reviews.values("flow_id", "flow__name").annotate(**_AGGREGATES).order_by("flow__name")
    per_reviewer = (
        reviews.exclude(decided_by_label__in=["", "system"])
        .values("decided_by_label")
        .annotate(**_AGGREGATES)
        .order_by("decided_by_label")
    )
    return {
        "open": reviews.filter(status__in=REVIEW_PENDING).count(),
        "overdue": reviews.filter(status__in=REVIEW_PENDING, due_at__lt=timezone.now()).count(),
        "overall": _rates(total),
        "per_flow": [{"flow": r["flow_id"], "flow_name": r["flow__name"], **_rates(r)} for r in per_flow],
        "per_reviewer": [{"reviewer": r["decided_by_label"], **_rates(r)} for r in per_reviewer],
    }
