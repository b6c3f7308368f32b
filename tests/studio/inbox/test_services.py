"""Inbox services on the real workers: claims and conflicts, idempotent decisions, quorum,
assignment, SLA expiry and escalation (never an automatic approval)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from flows import engine
from flows.models import RunStatus
from studio.inbox import services
from studio.inbox.models import ReviewStatus
from studio.tenants.roles import Role
from tests.factories import make_member, make_tenant
from tests.flows.helpers import start, statuses, wait_run
from tests.studio.inbox.helpers import actor, approval_flow, wait_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def tenant():
    return make_tenant("Services")


@pytest.fixture
def rita(tenant):
    return actor(tenant, make_member(tenant, Role.REVIEWER, username="rita"), Role.REVIEWER)


@pytest.fixture
def remy(tenant):
    return actor(tenant, make_member(tenant, Role.REVIEWER, username="remy"), Role.REVIEWER)


def test_a_claim_is_exclusive_and_a_decision_on_someone_elses_claim_is_a_conflict(tenant, rita, remy):
    run = start(approval_flow(tenant), {"amount": 5})
    review = wait_review(run)
    claimed = services.review_claim(review=review, actor=rita)
    assert claimed.status == ReviewStatus.CLAIMED and claimed.claimed_by == rita.user
    assert services.review_claim(review=review, actor=rita).claimed_by == rita.user  # again: a no-op
    with pytest.raises(services.ReviewConflict, match="claimed by rita"):
        services.review_claim(review=review, actor=remy)
    with pytest.raises(services.ReviewConflict, match="claimed by rita"):
        services.review_decide(review=review, actor=remy, decision="reject")
    released = services.review_release(review=review, actor=rita)
    assert released.status == ReviewStatus.OPEN and released.claimed_by is None
    services.review_claim(review=review, actor=remy)
    assert (
        services.review_decide(review=review, actor=remy, decision="approve").status == ReviewStatus.APPROVED
    )
    assert wait_run(run).outputs == {"sent": "We will refund you.", "amount": 5}


def test_a_second_decision_returns_the_first_and_resumes_nothing(tenant, rita):
    run = start(approval_flow(tenant), {"amount": 5})
    review = wait_review(run)
    first = services.review_decide(review=review, actor=rita, decision="approve")
    again = services.review_decide(review=review, actor=rita, decision="reject", comment="changed my mind")
    assert again.pk == first.pk and again.status == ReviewStatus.APPROVED and again.decision == "approve"
    run = wait_run(run)
    assert run.outputs == {"sent": "We will refund you.", "amount": 5}
    assert run.steps.get(node_id="send").attempt == 1 and statuses(run)["dropped"] == "skipped"


def test_an_edit_outside_the_editable_fields_or_the_schema_is_refused(tenant, rita):
    run = start(approval_flow(tenant), {"amount": 5})
    review = wait_review(run)
    with pytest.raises(services.ReviewInvalid, match=r"output\.amount is not an editable field"):
        services.review_decide(review=review, actor=rita, decision="edit", output={"amount": 5000})
    with pytest.raises(services.ReviewInvalid, match=r"output\.reply"):
        services.review_decide(review=review, actor=rita, decision="edit", output={"reply": "x" * 201})
    review.refresh_from_db()
    assert review.status == ReviewStatus.OPEN  # nothing recorded, nothing resumed
    services.review_decide(review=review, actor=rita, decision="edit", output={"reply": "ok", "amount": 5})
    assert wait_run(run).outputs == {"sent": "ok", "amount": 5}


def test_named_reviewers_and_roles_are_enforced(tenant, rita, remy):
    builder = actor(tenant, make_member(tenant, Role.BUILDER), Role.BUILDER)
    owner = actor(tenant, make_member(tenant, Role.OWNER), Role.OWNER)
    run = start(approval_flow(tenant, reviewers={"users": ["remy"]}), {"amount": 5})
    review = wait_review(run)
    for refused in (rita, builder):
        with pytest.raises(services.ReviewRefused):
            services.review_decide(review=review, actor=refused, decision="approve")
    services.review_claim(review=review, actor=remy)
    with pytest.raises(services.ReviewConflict):  # owners may decide anything, but not over a claim
        services.review_decide(review=review, actor=owner, decision="approve")
    services.review_decide(review=review, actor=remy, decision="approve")
    assert wait_run(run).status == RunStatus.SUCCEEDED


def test_a_quorum_waits_for_n_distinct_approvals_and_one_rejection_decides(tenant, rita, remy):
    flow = approval_flow(tenant, quorum=2)
    run = start(flow, {"amount": 5})
    review = wait_review(run)
    assert services.review_decide(review=review, actor=rita, decision="approve").status == ReviewStatus.OPEN
    assert services.review_decide(review=review, actor=rita, decision="approve").approvals[0]["by"] == "rita"
    review.refresh_from_db()
    assert len(review.approvals) == 1
    assert (
        services.review_decide(review=review, actor=remy, decision="approve").status == ReviewStatus.APPROVED
    )
    assert wait_run(run).outputs["sent"] == "We will refund you."

    run = start(flow, {"amount": 6})
    review = wait_review(run)
    services.review_decide(review=review, actor=rita, decision="approve")
    assert (
        services.review_decide(review=review, actor=remy, decision="reject").status == ReviewStatus.REJECTED
    )
    assert "dropped" in wait_run(run).outputs


def test_sla_expiry_takes_timed_out_and_never_approves(tenant):
    run = start(approval_flow(tenant, sla_s=60), {"amount": 5})
    review = wait_review(run)
    assert services.reviews_expire_due(timezone.now())["expired"] == 0  # not due yet
    result = services.reviews_expire_due(timezone.now() + timedelta(seconds=61))
    assert result["expired"] == 1
    review.refresh_from_db()
    assert review.status == ReviewStatus.EXPIRED and review.decision == "timeout"
    run = wait_run(run)
    assert run.outputs == {"late": True}
    assert statuses(run)["send"] == "skipped" and statuses(run)["dropped"] == "skipped"


def test_sla_expiry_without_a_timed_out_path_fails_the_run(tenant):
    run = start(approval_flow(tenant, sla_s=60, timed_out=False), {"amount": 5})
    wait_review(run)
    services.reviews_expire_due(timezone.now() + timedelta(seconds=61))
    run = wait_run(run)
    assert run.status == RunStatus.FAILED and "SLA" in run.error["message"]


def test_escalation_reassigns_to_a_role_with_a_new_sla_then_times_out(tenant, rita):
    admin = actor(tenant, make_member(tenant, Role.ADMIN, username="ada"), Role.ADMIN)
    run = start(approval_flow(tenant, sla_s=60, on_timeout="escalate", escalate_to="admin",
                              escalate_sla_s=3600), {"amount": 5})  # fmt: skip
    review = wait_review(run)
    services.review_claim(review=review, actor=rita)
    later = timezone.now() + timedelta(seconds=61)
    assert services.reviews_expire_due(later)["escalated"] == 1
    review.refresh_from_db()
    assert review.status == ReviewStatus.ESCALATED and review.assigned_role == "admin"
    assert review.claimed_by is None and abs((review.due_at - later).total_seconds() - 3600) < 1
    with pytest.raises(services.ReviewRefused):  # it left the reviewers' queue
        services.review_decide(review=review, actor=rita, decision="approve")
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING  # escalating decided nothing
    assert services.reviews_expire_due(later + timedelta(seconds=3601))["expired"] == 1
    assert wait_run(run).outputs == {"late": True}
    assert admin  # admins could have decided it meanwhile


def test_a_cancelled_run_closes_its_review_and_a_late_decision_is_a_conflict(tenant, rita):
    run = start(approval_flow(tenant), {"amount": 5})
    review = wait_review(run)
    assert engine.run_cancel(run.pk)
    review.refresh_from_db()
    assert review.status == ReviewStatus.CANCELLED  # at once, in the cancelling transaction
    with pytest.raises(services.ReviewConflict, match="no longer waiting"):
        services.review_decide(review=review, actor=rita, decision="approve")
    review.refresh_from_db()
    assert review.status == ReviewStatus.CANCELLED
