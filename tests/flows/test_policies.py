"""Approval policies on the real workers: a step whose node needs a guarded capability waits for
a person before anything is sent; approved, it runs once, exactly as shown; rejected, it fails
without having acted. Financial changes always ask; a tenant's own policy asks when its
condition holds (a price move beyond a bound)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from flows import policies
from flows.models import RunStatus, StepStatus
from studio.governance.models import AuditEntry
from studio.inbox import services
from studio.inbox.models import ReviewStatus
from studio.tenants.roles import Role
from tests.factories import make_loopback_tenant, make_member
from tests.flows.helpers import edge, graph, node, published_flow, start, statuses, wait_run
from tests.flows.receiver import Receiver, json_answer
from tests.studio.inbox.helpers import actor, wait_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

PRICE_POLICY = {"name": "price-moves", "capability": "pricing.publish", "when": "(input.change_pct | abs) > 10",
                "role": Role.REVIEWER}  # fmt: skip


@pytest.fixture
def tenant():
    return make_loopback_tenant("Guarded", policies=[PRICE_POLICY])


@pytest.fixture
def receiver():
    with Receiver() as server:
        server.on("/refunds", json_answer({"refund": "re_1", "status": "succeeded"}))
        server.on("/prices", json_answer({"published": True}))
        yield server


def guarded_flow(tenant, receiver, path: str, capability: str, *, error_path: bool = False):
    """trigger → call (HTTP POST needing ``capability``) → done; optionally call's error → failed."""
    call = node("call", "http", method="POST", url=receiver.url(path), capability=capability,
                body={"sku": "{{ input.sku }}", "amount": "{{ input.amount }}"})  # fmt: skip
    nodes = [
        node("trigger", "trigger"),
        call,
        node("done", "output", mapping={"result": "{{ nodes.call.output.body }}"}),
    ]
    edges = [edge("trigger", "call"), edge("call", "done")]
    if error_path:
        nodes.append(node("failed", "output", mapping={"refused": "{{ nodes.call.error.message }}"}))
        edges.append(edge("call", "failed", "error"))
    return published_flow(tenant, graph(nodes, edges), name=f"{capability} flow",
                          capabilities=["http:127.0.0.1", capability])  # fmt: skip


def test_a_financial_change_waits_for_an_admin_and_runs_once_approved(tenant, receiver):
    admin = actor(tenant, make_member(tenant, Role.ADMIN, username="ada"), Role.ADMIN)
    reviewer = actor(tenant, make_member(tenant, Role.REVIEWER, username="rex"), Role.REVIEWER)
    run = start(guarded_flow(tenant, receiver, "/refunds", "billing.write"), {"sku": "A-1", "amount": 40})
    review = wait_review(run)
    assert (review.reason, review.policy, review.assigned_role) == ("policy", "financial-changes", Role.ADMIN)
    assert review.title == "call: billing.write needs approval"
    assert review.proposal["request"]["body"] == {"sku": "A-1", "amount": 40}  # rendered, as it will be sent
    assert review.proposal["request"]["url"] == receiver.url("/refunds")
    assert review.proposal["capabilities"] == ["billing.write", "http:127.0.0.1"]
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING and run.steps.get(node_id="call").status == StepStatus.WAITING
    assert receiver.calls("/refunds") == []  # nothing sent before a person approved
    trace = Client()
    trace.force_login(admin.user)
    assert "for approval under the financial-changes policy" in trace.get(f"/runs/{run.pk}/").content.decode()

    with pytest.raises(services.ReviewRefused):  # assigned to admins
        services.review_decide(review=review, actor=reviewer, decision="approve")
    with pytest.raises(services.ReviewInvalid):  # nothing to edit: the request runs as shown or not at all
        services.review_decide(review=review, actor=admin, decision="edit", output={"amount": 1})
    services.review_decide(review=review, actor=admin, decision="approve")
    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"result": {"refund": "re_1", "status": "succeeded"}}
    [call] = receiver.calls("/refunds")
    assert call.body == {"sku": "A-1", "amount": 40}
    step = run.steps.get(node_id="call")
    assert step.attempt == 1 and step.state["approved_under"] == "financial-changes"
    review.refresh_from_db()
    assert review.status == ReviewStatus.APPROVED
    assert AuditEntry.objects.filter(tenant=tenant, action="review.decided", actor=admin.label).exists()


def test_a_rejected_financial_change_fails_the_step_without_acting(tenant, receiver):
    admin = actor(tenant, make_member(tenant, Role.ADMIN, username="ada"), Role.ADMIN)
    run = start(guarded_flow(tenant, receiver, "/refunds", "billing.write", error_path=True), {"amount": 900})
    review = wait_review(run)
    services.review_decide(review=review, actor=admin, decision="reject", comment="too much")
    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED, run.error  # the error handle took over
    assert statuses(run)["call"] == "failed" and statuses(run)["done"] == "skipped"
    message = run.outputs["refused"]
    assert "rejected under the 'financial-changes' policy" in message and "too much" in message
    assert receiver.calls("/refunds") == []


def test_a_price_move_beyond_the_bound_asks_and_a_small_one_does_not(tenant, receiver):
    flow = guarded_flow(tenant, receiver, "/prices", "pricing.publish")
    small = wait_run(start(flow, {"sku": "B-2", "amount": 10.5, "change_pct": 4}))
    assert small.status == RunStatus.SUCCEEDED, small.error
    assert not small.steps.get(node_id="call").state  # never parked

    big = start(flow, {"sku": "B-2", "amount": 14, "change_pct": -35})
    review = wait_review(big)
    assert (review.policy, review.assigned_role) == ("price-moves", Role.REVIEWER)
    assert "(input.change_pct | abs) > 10" in review.instructions
    assert len(receiver.calls("/prices")) == 1  # the small move only
    reviewer = actor(tenant, make_member(tenant, Role.REVIEWER, username="rex"), Role.REVIEWER)
    services.review_decide(review=review, actor=reviewer, decision="approve")
    assert wait_run(big).status == RunStatus.SUCCEEDED
    assert [c.body["amount"] for c in receiver.calls("/prices")] == [10.5, 14]


def test_policies_are_parsed_with_errors_naming_the_field():
    existing = policies.tenant_policies({"policies": [PRICE_POLICY]})
    assert [p.name for p in existing] == ["financial-changes", "price-moves"]
    assert (
        existing[0].built_in and existing[0].covers({"billing.write"}) and not existing[0].covers({"http:x"})
    )
    made = policies.parse_policy(name="stripe", capability="http:api.stripe.com", when="input.amount > 100",
                                 role=Role.OWNER, sla_s="3600", existing=existing)  # fmt: skip
    assert made.as_setting() == {"name": "stripe", "capability": "http:api.stripe.com", "when": "input.amount > 100",
                                 "role": Role.OWNER, "sla_s": 3600}  # fmt: skip
    for fields, field in (
        ({"name": "Bad Name", "capability": "x.y"}, "name"),
        ({"name": "price-moves", "capability": "x.y"}, "name"),
        ({"name": "ok", "capability": "Not A Capability"}, "capability"),
        ({"name": "ok", "capability": "x.y", "when": "input.amount >"}, "when"),
        ({"name": "ok", "capability": "x.y", "role": "viewer"}, "role"),
        ({"name": "ok", "capability": "x.y", "sla_s": "soon"}, "sla_s"),
        ({"name": "ok", "capability": "x.y", "sla_s": "5"}, "sla_s"),
    ):
        with pytest.raises(ValidationError) as caught:
            policies.parse_policy(existing=existing, **fields)
        assert field in caught.value.message_dict, (fields, caught.value.message_dict)
