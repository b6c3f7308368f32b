"""Writes of the inbox: create, claim, release, decide (one or many), expire and escalate.

Every write that changes what reviewers see publishes a small ``review.event`` to the tenant's
inbox group after commit (``studio.realtime.publish_on_commit``); clients that missed one catch
up from the API. A decision and the resumption of its run happen in one transaction, with the
review row locked, so a decision is never recorded without its run going on (nor the reverse),
and a repeated decision finds the review decided and changes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import jsonschema
from django.db import transaction
from django.utils import timezone

from flows import engine
from flows.models import Run, StepRun, StepStatus
from flows.nodes import NodeError, NodeResult
from studio.governance.audit import audit_append
from studio.inbox.models import REVIEW_PENDING, REVIEW_UNCLAIMED, Decision, ReviewStatus, ReviewTask
from studio.inbox.selectors import review_unread_count
from studio.realtime import group_name, publish_on_commit
from studio.tenants.roles import Role
from studio.tenants.selectors import Actor

_MISSING = object()
BATCH = 200  # the SLA job's bounded batch; the next beat takes the rest

log = logging.getLogger(__name__)


class ReviewError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ReviewInvalid(ReviewError):
    """The decision itself is wrong (an edit outside the editable fields…): a 400."""


class ReviewRefused(ReviewError):
    """This actor may not decide this review (not among its reviewers): a 403."""

    status, code = 403, "forbidden"


class ReviewConflict(ReviewError):
    """Someone else holds it, or it can no longer be decided: a 409."""

    status, code = 409, "conflict"


# -- events -------------------------------------------------------------------------------------


def review_summary(review: ReviewTask) -> dict[str, Any]:
    """The small payload of a live event: enough to place and label the item in a list."""
    return {
        "id": review.pk, "status": review.status, "flow": review.flow_id, "flow_name": review.flow.name,
        "run": review.run_id, "node_id": review.node_id, "title": review.title,
        "claimed_by": review.claimed_by.get_username() if review.claimed_by_id else None,
        "decision": review.decision or None, "decided_by": review.decided_by_label or None,
        "assigned_role": review.assigned_role, "assigned_users": review.assigned_users,
        "quorum": review.quorum, "votes": len(review.approvals or []),
        "due_at": review.due_at.isoformat() if review.due_at else None,
        "created_at": review.created_at.isoformat(),
    }  # fmt: skip


def _publish(review: ReviewTask, event: str, *, unread: int | None = None) -> None:
    # The unclaimed count rides along (one indexed count) so every open page's nav badge stays right.
    if unread is None:
        unread = review_unread_count(tenant=review.tenant_id)
    message = {"type": "review.event", "event": event, "review": review_summary(review), "unread": unread}
    publish_on_commit(group_name("inbox", review.tenant_id), message)


# -- who may decide -------------------------------------------------------------------------------


def review_can_decide(*, review: ReviewTask, actor: Actor) -> bool:
    """The role must decide reviews; then owners and admins always may, others only when the
    review is assigned to their role or names them."""
    if not actor.can("reviews.decide"):
        return False
    if actor.role in (Role.OWNER, Role.ADMIN):
        return True
    if review.assigned_users:
        return actor.user is not None and actor.user.get_username() in review.assigned_users
    return not review.assigned_role or actor.role == review.assigned_role


def _check_can_decide(review: ReviewTask, actor: Actor) -> None:
    if not review_can_decide(review=review, actor=actor):
        who = (
            ", ".join(review.assigned_users) if review.assigned_users else f"the {review.assigned_role} role"
        )
        raise ReviewRefused(f"this review is assigned to {who}")


# -- creating -------------------------------------------------------------------------------------


def review_create(
    *, run: Run, step: StepRun, title: str = "", instructions: str = "", proposal: Any = None,
    editable_schema: dict | None = None, assigned_role: str = "", assigned_users: list[str] | None = None,
    quorum: int = 1, sla_s: int | None = None, on_timeout: str = "timed_out", escalate_to: str = "",
    escalate_sla_s: int | None = None, reason: str = "node", policy: str = "",
) -> ReviewTask:  # fmt: skip
    """Open a review for a step that is being parked (called inside the engine's transaction)."""
    # A run retried after a cancel asks again: the earlier, unanswerable review closes first.
    ReviewTask.objects.filter(step=step, status__in=REVIEW_PENDING).update(status=ReviewStatus.CANCELLED)
    preds = engine.compiled_graph(run).predecessors(step.node_id)
    upstream = (
        StepRun.objects.filter(run=run, node_id__in=preds, status=StepStatus.SUCCEEDED)
        .only("node_id", "inputs", "model", "confidence")
        .order_by("-finished_at")
        .first()
    )
    # Counted before the review exists (it will be one more: it opens unclaimed), so that from
    # its creation to its announcement there is only its INSERT and the commit.
    unread = review_unread_count(tenant=run.tenant_id) + 1
    now = timezone.now()
    review = ReviewTask.objects.create(
        tenant_id=run.tenant_id, flow_id=run.flow_id, run=run, step=step, node_id=step.node_id,
        title=title[:200], instructions=instructions, proposal=proposal, editable_schema=editable_schema,
        context={"run_inputs": run.inputs, "upstream": upstream.node_id if upstream else None,
                 "upstream_inputs": upstream.inputs if upstream else None},
        model=upstream.model if upstream else "", confidence=upstream.confidence if upstream else None,
        reason=reason, policy=policy, assigned_role=assigned_role, assigned_users=assigned_users or [],
        quorum=max(1, quorum), sla_s=sla_s, due_at=now + timedelta(seconds=sla_s) if sla_s else None,
        on_timeout=on_timeout, escalate_to=escalate_to or "", escalate_sla_s=escalate_sla_s, created_at=now,
    )  # fmt: skip
    review.flow = run.flow
    _publish(review, "created", unread=unread)
    return review


# -- claiming -------------------------------------------------------------------------------------


def review_claim(*, review: ReviewTask, actor: Actor) -> ReviewTask:
    """Take an unclaimed review (compare-and-set on its status): a second claimant gets a
    conflict naming the holder; claiming one's own claim again is a no-op. Quorum reviews are
    not claimed: every reviewer votes."""
    if actor.user is None:
        raise ReviewInvalid("claims are made by people; an API key decides directly")
    _check_can_decide(review, actor)
    if review.quorum > 1:
        return review
    now = timezone.now()
    with transaction.atomic():
        taken = ReviewTask.objects.filter(pk=review.pk, status__in=REVIEW_UNCLAIMED).update(
            status=ReviewStatus.CLAIMED, claimed_by=actor.user, claimed_at=now, updated_at=now
        )
        review.refresh_from_db()
        if not taken:
            if review.status == ReviewStatus.CLAIMED and review.claimed_by_id == actor.user.pk:
                return review
            raise _conflict(review)
        _publish(review, "claimed")
    return review


def review_release(*, review: ReviewTask, actor: Actor) -> ReviewTask:
    """Give a claim back to the queue (one's own; owners and admins may release anyone's)."""
    now = timezone.now()
    with transaction.atomic():
        review = ReviewTask.objects.select_for_update().get(pk=review.pk)
        if review.status != ReviewStatus.CLAIMED:
            return review
        mine = actor.user is not None and review.claimed_by_id == actor.user.pk
        if not mine and actor.role not in (Role.OWNER, Role.ADMIN):
            raise _conflict(review)
        review.status = ReviewStatus.ESCALATED if review.escalated_at else ReviewStatus.OPEN
        review.claimed_by, review.claimed_at, review.updated_at = None, None, now
        review.save(update_fields=["status", "claimed_by", "claimed_at", "updated_at"])
        _publish(review, "released")
    return review


def _conflict(review: ReviewTask) -> ReviewConflict:
    if review.status == ReviewStatus.CLAIMED and review.claimed_by_id:
        return ReviewConflict(f"claimed by {review.claimed_by.get_username()}")
    return ReviewConflict(f"the review is {review.status}")


# -- deciding -------------------------------------------------------------------------------------


def _audit_decision(review: ReviewTask, actor: Actor, decision: str) -> None:
    audit_append(tenant_id=review.tenant_id, actor=actor.label, action="review.decided", target=f"review:{review.pk}",
                 data={"flow": review.flow.name, "run": review.run_id, "node": review.node_id, "decision": decision,
                       "status": review.status, "approvals": len(review.approvals or [])})  # fmt: skip


def review_decide(
    *, review: ReviewTask, actor: Actor, decision: str, output: Any = _MISSING, comment: str = ""
) -> ReviewTask:
    """Approve, reject, or edit-then-approve, and resume the run in the same transaction.

    A review decided already is returned as it stands (no second resume). Under quorum N an
    approval is a vote until the Nth distinct one; one rejection decides."""
    if decision not in (Decision.APPROVE, Decision.REJECT, Decision.EDIT):
        details = [{"field": "decision", "message": "approve, reject or edit"}]
        raise ReviewInvalid(f"unknown decision {decision!r}", details=details)
    gone = False
    with transaction.atomic():
        review = ReviewTask.objects.select_for_update(of=("self",)).select_related("flow").get(pk=review.pk)
        if review.status == ReviewStatus.CANCELLED:
            raise ReviewConflict(
                "the run is no longer waiting for this review (it was cancelled or has ended)"
            )
        if not review.is_pending:
            return review  # decided already: the decision stands, the run was resumed once
        _check_can_decide(review, actor)
        user_id = actor.user.pk if actor.user is not None else None
        if review.quorum == 1 and review.claimed_by_id and review.claimed_by_id != user_id:
            raise _conflict(review)
        now = timezone.now()
        if decision == Decision.REJECT:
            review.status = ReviewStatus.REJECTED
            result = NodeResult(
                output={"rejected": True, "comment": comment, "reviewer": actor.label, "proposal": review.proposal},
                handles=["rejected"],
            )  # fmt: skip
        else:
            final = review.proposal
            if decision == Decision.EDIT:
                if review.quorum > 1:
                    raise ReviewInvalid("a review that needs several approvals cannot be edited")
                final, review.diff = _apply_edit(review, output)
                review.edited_output = final
            if review.quorum > 1:
                if any(vote["by"] == actor.label for vote in review.approvals):
                    return review  # this reviewer voted already
                review.approvals = [*review.approvals, {"by": actor.label, "user_id": user_id,
                                                        "at": now.isoformat(), "comment": comment}]  # fmt: skip
                if len(review.approvals) < review.quorum:
                    review.save(update_fields=["approvals", "updated_at"])
                    _audit_decision(review, actor, "voted")
                    _publish(review, "voted")
                    return review
            review.status = ReviewStatus.EDITED if decision == Decision.EDIT else ReviewStatus.APPROVED
            result = NodeResult(output=final, handles=["approved"])
        if review.quorum == 1 and review.claimed_at is None and actor.user is not None:
            review.claimed_by, review.claimed_at = actor.user, now  # decided straight away: claimed now
        review.decision, review.output, review.comment = decision, result.output, comment
        review.decided_by, review.decided_by_label, review.decided_at = actor.user, actor.label, now
        if _resume(review, result, decision=decision, actor=actor, comment=comment):
            review.save()
            _audit_decision(review, actor, decision)
            _publish(review, "decided")
            if decision == Decision.EDIT:
                _record_correction(review)
        else:
            # The run ended meanwhile (cancelled, timed out): nothing to resume, nothing decided.
            _close_unanswerable(review, now)
            gone = True
    if gone:
        raise ReviewConflict("the run is no longer waiting for this review (it was cancelled or has ended)")
    return review


def _resume(review: ReviewTask, result: NodeResult, *, decision: str, actor: Actor, comment: str) -> bool:
    """Carry a decision to the waiting step. An approval node completes with the decision; a
    step an approval policy parked runs once approved, and fails when rejected."""
    if review.reason != "policy":
        return engine.step_resume(review.step_id, result=result)
    if decision != Decision.REJECT:
        return engine.step_release(review.step_id, approved_under=review.policy)
    error = NodeError(
        f"rejected under the {review.policy!r} policy by {actor.label}" + (f": {comment}" if comment else ""),
        details={"review": review.pk, "policy": review.policy},
    )
    return engine.step_resume(review.step_id, error=error)


CORRECTIONS_NAMESPACE = "corrections"


def _record_correction(review: ReviewTask) -> None:
    """A reviewer's edit goes to the tenant's memory as a correction, so later runs can retrieve
    it. A memory failure must not undo the decision: it is logged and the decision stands."""
    from studio.memory.services import memory_write_correction

    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the decision intact
            memory_write_correction(
                tenant=review.tenant, namespace=CORRECTIONS_NAMESPACE, source=f"review:{review.pk}",
                content=json.dumps(review.edited_output, ensure_ascii=False, default=str),
                metadata={"flow": review.flow_id, "node": review.node_id, "diff": review.diff},
            )  # fmt: skip
    except Exception:
        log.exception("the correction of review %s was not written to memory", review.pk)


def _close_unanswerable(review: ReviewTask, now) -> None:
    ReviewTask.objects.filter(pk=review.pk).update(status=ReviewStatus.CANCELLED, updated_at=now)
    review.refresh_from_db()
    _publish(review, "cancelled")


def review_decide_bulk(
    *, reviews: list[ReviewTask], actor: Actor, decision: str, comment: str = ""
) -> list[dict[str, Any]]:
    """Approve or reject many similar items, each in its own transaction: one that fails
    (claimed by someone else…) does not hold back the others."""
    if decision not in (Decision.APPROVE, Decision.REJECT):
        raise ReviewInvalid("bulk decisions approve or reject (edits are one at a time)",
                            details=[{"field": "decision", "message": "approve or reject"}])  # fmt: skip
    results = []
    for review in reviews:
        try:
            done = review_decide(review=review, actor=actor, decision=decision, comment=comment)
        except ReviewError as exc:
            results.append({"id": review.pk, "ok": False, "status": exc.status, "message": exc.message})
        else:
            results.append({"id": done.pk, "ok": True, "status": 200, "review_status": done.status})
    return results


def _apply_edit(review: ReviewTask, output: Any) -> tuple[Any, list[dict]]:
    """The proposal with the reviewer's changes, checked against the editable fields schema."""
    schema = review.editable_schema
    if not schema:
        raise ReviewInvalid("this review has no editable fields")
    if output is _MISSING:
        raise ReviewInvalid(
            "an edit needs the edited output", details=[{"field": "output", "message": "required"}]
        )
    proposal = review.proposal
    if isinstance(proposal, dict) and isinstance(output, dict):
        editable = set((schema.get("properties") or {}).keys())
        frozen = sorted(k for k, v in output.items() if k not in editable and proposal.get(k, _MISSING) != v)
        if frozen:
            raise ReviewInvalid(
                f"output.{frozen[0]} is not an editable field",
                details=[{"field": f"output.{k}", "message": "not an editable field"} for k in frozen],
            )
        final = {**proposal, **{k: v for k, v in output.items() if k in editable}}
        checked = {k: v for k, v in final.items() if k in editable} if editable else final
    else:
        final = checked = output
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(checked), key=lambda e: list(e.path))
    if errors:
        raise ReviewInvalid(
            f"output{''.join(f'.{p}' for p in errors[0].absolute_path)}: {errors[0].message}",
            details=[{"field": "output" + "".join(f".{p}" for p in e.absolute_path), "message": e.message}
                     for e in errors],
        )  # fmt: skip
    return final, value_diff(proposal, final)


def value_diff(before: Any, after: Any, path: str = "") -> list[dict]:
    """Field by field differences (dotted paths), what the inbox shows and corrections record."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict] = []
        for key in [*before, *(k for k in after if k not in before)]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in after:
                out.append({"field": sub, "before": before[key], "after": None, "change": "removed"})
            elif key not in before:
                out.append({"field": sub, "before": None, "after": after[key], "change": "added"})
            else:
                out += value_diff(before[key], after[key], sub)
        return out
    if before != after:
        return [{"field": path, "before": before, "after": after, "change": "changed"}]
    return []


# -- the SLA job ------------------------------------------------------------------------------------


def reviews_expire_due(now=None) -> dict[str, int]:
    """Beat: reviews past their SLA escalate once (a new role, a new SLA) or expire, taking the
    step's ``timed_out`` handle (or failing it when that handle is not connected). Never an
    automatic approval. Also closes reviews whose run ended without them."""
    now = now or timezone.now()
    escalated = expired = 0
    due = list(
        ReviewTask.objects.filter(status__in=REVIEW_PENDING, due_at__lt=now).values_list("pk", flat=True)[
            :BATCH
        ]
    )
    for pk in due:
        gone = False
        with transaction.atomic():
            review = (
                ReviewTask.objects.select_for_update(of=("self",)).select_related("flow", "run")
                .filter(pk=pk, status__in=REVIEW_PENDING, due_at__lt=now).first()
            )  # fmt: skip
            if review is None:
                continue  # decided meanwhile
            if review.on_timeout == "escalate" and review.escalate_to and review.escalated_at is None:
                sla = review.escalate_sla_s or review.sla_s
                review.status, review.escalated_at = ReviewStatus.ESCALATED, now
                review.assigned_role, review.assigned_users = review.escalate_to, []
                review.claimed_by, review.claimed_at = None, None
                review.due_at = now + timedelta(seconds=sla) if sla else None
                review.save()
                _publish(review, "escalated")
                escalated += 1
                continue
            output = {"timed_out": True, "proposal": review.proposal}
            graph = engine.compiled_graph(review.run)
            if any((e.get("sourceHandle") or "out") == "timed_out" for e in graph.outgoing[review.node_id]):
                resumed = engine.step_resume(
                    review.step_id, result=NodeResult(output=output, handles=["timed_out"])
                )
            else:
                error = NodeError("the review was not decided within its SLA", details={"review": review.pk})
                resumed = engine.step_resume(review.step_id, error=error)
            if resumed:
                review.status, review.decision, review.output = ReviewStatus.EXPIRED, Decision.TIMEOUT, output
                review.decided_by_label, review.decided_at = "system", now
                review.save()
                _publish(review, "expired")
                expired += 1
            else:
                gone = True
        if gone:
            with transaction.atomic():
                _close_unanswerable(review, now)
    return {"escalated": escalated, "expired": expired, "closed": reviews_close_orphans(now)}


def reviews_cancel_for_steps(step_ids: list[int]) -> None:
    """The engine cancelled these waiting steps: their open reviews close now (registered with
    ``engine.on_waits_cancelled``; runs inside the engine's transaction)."""
    now = timezone.now()
    for review in ReviewTask.objects.filter(step_id__in=step_ids, status__in=REVIEW_PENDING).select_related(
        "flow"
    ):
        ReviewTask.objects.filter(pk=review.pk).update(status=ReviewStatus.CANCELLED, updated_at=now)
        review.status = ReviewStatus.CANCELLED
        _publish(review, "cancelled")


def reviews_delete_for_runs(run_ids: list[int]) -> None:
    """These runs' history is being removed (``flows.retention``): their reviews go with them,
    in the same transaction. The audit log keeps what was decided."""
    ReviewTask.objects.filter(run_id__in=run_ids).delete()


def reviews_close_orphans(now=None) -> int:
    """Close pending reviews whose step no longer waits (the run was cancelled or timed out)."""
    now = now or timezone.now()
    orphans = list(
        ReviewTask.objects.filter(status__in=REVIEW_PENDING)
        .exclude(step__status=StepStatus.WAITING)
        .select_related("flow")[:BATCH]
    )
    for review in orphans:
        with transaction.atomic():
            if ReviewTask.objects.filter(pk=review.pk, status__in=REVIEW_PENDING).update(
                status=ReviewStatus.CANCELLED, updated_at=now
            ):
                review.status = ReviewStatus.CANCELLED
                _publish(review, "cancelled")
    return len(orphans)
