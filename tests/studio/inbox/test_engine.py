"""Approvals on the real workers: only the chosen handle runs, a resume never re-runs earlier
steps, and approvals inside a map are decided one by one."""

from __future__ import annotations

import pytest

from flows.models import Run, RunStatus, StepStatus
from studio.governance.models import AuditEntry
from studio.inbox import services
from studio.inbox.models import ReviewStatus
from studio.tenants.roles import Role
from tests.factories import make_loopback_tenant, make_member
from tests.flows.helpers import edge, graph, node, published_flow, start, statuses, wait_run
from tests.flows.receiver import Receiver, chat_completion
from tests.studio.inbox.helpers import actor, approval_flow, wait_review, wait_reviews

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def tenant():
    return make_loopback_tenant("Approvals")


@pytest.fixture
def reviewer(tenant):
    return actor(tenant, make_member(tenant, Role.REVIEWER, username="rita"), Role.REVIEWER)


@pytest.fixture
def receiver():
    with Receiver() as server:
        server.on("/v1/chat/completions", chat_completion("Refund approved, sorry for the trouble."))
        yield server


def model_flow(tenant, receiver, **approval):
    draft = node("draft", "llm", provider="openai_compatible", base_url=receiver.url("/v1"), model="local-model",
                 prompt="Draft a reply to {{ input.customer }}")  # fmt: skip
    return approval_flow(tenant, draft=draft, capabilities=["http:127.0.0.1"], **approval)


def test_the_step_waits_without_a_worker_and_approve_takes_only_the_approved_path(tenant, reviewer, receiver):
    run = start(model_flow(tenant, receiver), {"amount": 40, "customer": "Ann"})
    review = wait_review(run)
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING
    assert review.status == ReviewStatus.OPEN and review.instructions == "Refund 40 to Ann?"
    assert review.proposal == {"reply": "Refund approved, sorry for the trouble.", "amount": 40}
    assert review.model == "local-model" and review.context["upstream"] == "draft"
    assert run.steps.get(node_id="check").status == StepStatus.WAITING

    services.review_decide(review=review, actor=reviewer, decision="approve")
    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"sent": "Refund approved, sorry for the trouble.", "amount": 40}
    assert statuses(run) == {"trigger": "succeeded", "draft": "succeeded", "check": "succeeded",
                             "send": "succeeded", "dropped": "skipped", "late": "skipped"}  # fmt: skip
    # The resume went on from the approval only: the model was asked once, each step ran once.
    assert len(receiver.calls("/v1/chat/completions")) == 1
    assert {s.node_id: s.attempt for s in run.steps.exclude(status="skipped")} == {
        "trigger": 1, "draft": 1, "check": 1, "send": 1}  # fmt: skip


def test_reject_takes_only_the_rejected_path(tenant, reviewer, receiver):
    run = start(model_flow(tenant, receiver), {"amount": 900, "customer": "Bob"})
    review = wait_review(run)
    services.review_decide(review=review, actor=reviewer, decision="reject", comment="too much")
    decided = AuditEntry.objects.get(tenant=tenant, action="review.decided")
    assert decided.actor == reviewer.label and decided.details["decision"] == "reject"
    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"dropped": "too much"}
    assert statuses(run)["send"] == "skipped" and statuses(run)["late"] == "skipped"
    assert run.steps.get(node_id="check").handles == ["rejected"]
    assert len(receiver.calls("/v1/chat/completions")) == 1


def test_edit_then_approve_replaces_the_output_and_records_the_correction(tenant, reviewer):
    run = start(approval_flow(tenant), {"amount": 40, "customer": "Ann"})
    review = wait_review(run)
    services.review_decide(review=review, actor=reviewer, decision="edit", output={"reply": "Refunded 40 EUR."},
                           comment="be specific")  # fmt: skip
    run = wait_run(run)
    assert run.outputs == {"sent": "Refunded 40 EUR.", "amount": 40}
    review.refresh_from_db()
    assert review.status == ReviewStatus.EDITED
    assert review.diff == [{"field": "reply", "before": "We will refund you.", "after": "Refunded 40 EUR.",
                            "change": "changed"}]  # fmt: skip
    from studio.inbox.selectors import review_corrections

    [correction] = review_corrections(tenant=tenant)
    assert correction["proposal"]["reply"] == "We will refund you."
    assert correction["output"] == {"reply": "Refunded 40 EUR.", "amount": 40}
    # …and the correction is in the tenant's memory, where later runs can search for it.
    from studio.memory.selectors import memory_search

    hits = memory_search(tenant=tenant, namespace="corrections", query="Refunded 40 EUR", k=3)
    assert hits and hits[0].source == "correction" and "Refunded 40 EUR." in hits[0].content


def test_approvals_inside_a_map_of_20_items_are_decided_separately(tenant, reviewer):
    child = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("ok", "approval", data={"n": "{{ input.n }}"}),
         node("yes", "output", mapping={"n": "{{ nodes.ok.output.n }}"}),
         node("no", "output", mapping={"no": "{{ input.n }}"})],
        [edge("trigger", "ok"), edge("ok", "yes", "approved"), edge("ok", "no", "rejected")],
    ), name="item")  # fmt: skip
    parent = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("each", "map", items="input.rows", flow={"id": child.pk, "version": 1}, concurrency=20),
         node("out", "output", mapping={"results": "{{ nodes.each.output }}"})],
        [edge("trigger", "each"), edge("each", "out")],
    ), name="batch")  # fmt: skip
    run = start(parent, {"rows": [{"n": n} for n in range(20)]})
    children = []
    for _ in range(200):
        children = list(Run.objects.filter(parent_step__run=run).order_by("item_index"))
        if len(children) == 20:
            break
        import time

        time.sleep(0.05)
    assert len(children) == 20, (
        wait_run(run, timeout=1).error if Run.objects.get(pk=run.pk).is_finished else statuses(run)
    )
    reviews = {r.run_id: r for r in wait_reviews(children)}
    assert len(reviews) == 20
    for child_run in children:
        decision = "approve" if child_run.item_index % 2 == 0 else "reject"
        services.review_decide(review=reviews[child_run.pk], actor=reviewer, decision=decision)
    run = wait_run(run, timeout=60)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["results"] == [{"n": n} if n % 2 == 0 else {"no": n} for n in range(20)]
