"""The starter templates, the two scenarios among them, installed and run on the real workers
with their offline scripts: support-ticket triage and dynamic pricing across many SKUs."""

from __future__ import annotations

import pytest

from flows import services
from flows.models import Flow, RunStatus
from flows.starters import starter_get, starter_list
from studio.inbox import services as inbox
from studio.inbox.models import ReviewTask
from studio.tenants.roles import Role
from tests.conftest import wait_for
from tests.factories import make_member, make_tenant
from tests.flows.helpers import start, wait_run
from tests.studio.inbox.helpers import actor, wait_review

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def tenant():
    return make_tenant("Starters")


@pytest.fixture
def reviewer(tenant):
    return actor(tenant, make_member(tenant, Role.REVIEWER, username="rita"), Role.REVIEWER)


def install(tenant, slug: str) -> Flow:
    return services.starter_install(tenant=tenant, starter=starter_get(slug), offline=True, publish=True)


def test_every_starter_installs_with_its_companions_and_publishes(tenant):
    slugs = [s.slug for s in starter_list()]
    assert {"support_triage", "pricing"} <= set(slugs)
    for starter in starter_list():
        flow = services.starter_install(tenant=tenant, starter=starter)
        assert services.graph_problems(flow=flow, tenant=tenant, graph=flow.draft) == [], starter.slug
    pricing = Flow.objects.get(tenant=tenant, name="Dynamic pricing with guardrails")
    child = Flow.objects.get(tenant=tenant, name="Dynamic pricing with guardrails · Price one SKU")
    [price_all] = [n for n in pricing.draft["nodes"] if n["id"] == "price_all"]
    assert price_all["config"]["flow"] == {"id": child.pk, "version": 1}
    assert child.versions.count() == 1  # published, so the map can pin it
    assert pricing.versions.count() == 0  # the starter itself stays a draft until its builder publishes


def test_installing_is_all_or_nothing(tenant, monkeypatch):
    starter = starter_get("pricing")
    broken = starter.companions[0].graph["nodes"][1]
    monkeypatch.setitem(broken, "type", "no_such_type")
    with pytest.raises(services.PublishRefused):
        services.starter_install(tenant=tenant, starter=starter)
    assert not Flow.objects.filter(tenant=tenant).exists()


@pytest.mark.usefixtures("celery_worker")
def test_support_triage_answers_general_tickets_and_a_person_approves_billing_replies(tenant, reviewer):
    flow = install(tenant, "support_triage")
    general = wait_run(start(flow, {"subject": "Export to CSV", "body": "Where do I find the export?"}))
    assert general.status == RunStatus.SUCCEEDED, general.error
    assert general.outputs["route"] == "general" and general.outputs["status"] == "sent"

    billing = start(
        flow, {"subject": "Charged twice", "body": "Please refund the second payment.", "customer": "c-7"}
    )
    review = wait_review(billing)
    assert review.proposal["customer"] == "c-7" and "refunded" in review.proposal["reply"]
    inbox.review_decide(review=review, actor=reviewer, decision="edit",
                        output={"reply": "We refunded the second payment today."})  # fmt: skip
    billing = wait_run(billing)
    assert billing.status == RunStatus.SUCCEEDED, billing.error
    assert billing.outputs == {"route": "billing", "status": "sent after approval",
                               "reply": "We refunded the second payment today."}  # fmt: skip

    # The reviewer's edit is a correction in memory: the next billing draft is shown it.
    again = start(flow, {"subject": "Charged twice again", "body": "Another refund please."})
    wait_review(again)
    prompt = again.steps.get(node_id="billing_draft").inputs["prompt"]
    assert "We refunded the second payment today." in prompt.split("corrections of earlier replies:")[1]


@pytest.mark.usefixtures("celery_worker")
def test_support_triage_holds_a_reply_with_personal_data_for_review(tenant, reviewer):
    flow = install(tenant, "support_triage")
    run = start(flow, {"subject": "Login", "body": "I forgot my password."})
    review = wait_review(run)
    assert "reset-help@example.com" in review.proposal["reply"]
    assert "email" in review.instructions
    inbox.review_decide(review=review, actor=reviewer, decision="reject", comment="no addresses in replies")
    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {
        "route": "technical",
        "status": "held by a reviewer",
        "comment": "no addresses in replies",
    }


@pytest.mark.usefixtures("celery_worker")
def test_pricing_prices_each_sku_in_its_own_run_within_the_guardrails(tenant, reviewer):
    flow = install(tenant, "pricing")
    skus = [
        {"sku": "SKU-1001", "cost": 12.5, "price": 19.99, "competitor_price": 21.49, "inventory": 420},
        {"sku": "SKU-1002", "cost": 15.0, "price": 24.99, "competitor_price": 29.99, "weekly_demand": 80},
        {"sku": "SKU-1003", "cost": 4.5, "price": 6.49, "competitor_price": 5.99},
        {"sku": "SKU-9999", "cost": 1.0, "price": 2.0, "competitor_price": 2.5},
    ]
    run = start(flow, {"skus": skus})
    # Only the move over 5% waits for a person, in its SKU's own run.
    review = wait_for(lambda: ReviewTask.objects.filter(run__parent_step__run=run).first(), timeout=30,
                      what="the review of SKU-1002's price")  # fmt: skip
    assert review.proposal == {"sku": "SKU-1002", "old_price": 24.99, "price": 27.49,
                               "reason": "Demand outruns stock; the competitor sells at 29.99."}  # fmt: skip
    inbox.review_decide(review=review, actor=reviewer, decision="edit", output={"price": 26.99})
    run = wait_run(run, timeout=60)
    assert run.status == RunStatus.SUCCEEDED, run.error
    prices = run.outputs["prices"]
    assert run.outputs["skus"] == 4 and [p["sku"] for p in prices] == [s["sku"] for s in skus]
    assert [(p["status"].split(":")[0], p["new_price"]) for p in prices] == [
        ("applied", 20.79),
        ("applied after approval", 26.99),
        ("held", 6.49),  # below the 5% margin over cost
        ("held", 2.0),  # no usable proposal
    ]
    assert prices[3]["reason"] == "price = 0 is below 0.01"  # the violations, joined by "; "
    assert ReviewTask.objects.filter(run__parent_step__run=run).count() == 1


def test_the_flows_page_creates_a_flow_from_a_template_with_its_companions(tenant):
    from django.test import Client

    owner = make_member(tenant, Role.OWNER, username="olga")
    client = Client()
    client.force_login(owner)
    page = client.get("/flows/").content.decode()
    assert "Support-ticket triage" in page and "Dynamic pricing with guardrails" in page
    response = client.post("/flows/new/", {"starter": "pricing", "name": "Nightly prices"}, follow=True)
    flow = Flow.objects.get(tenant=tenant, name="Nightly prices")
    assert response.redirect_chain[-1][0] == f"/flows/{flow.pk}/edit/"
    assert "Nightly prices · Price one SKU" in response.content.decode()
    assert (
        client.post("/flows/new/", {"starter": "nope"}, follow=True)
        .content.decode()
        .count("That template is not available.")
    )
