"""reviews/ over HTTP: listing, claim, decide, bulk, metrics; another tenant's review is a 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from flows.models import RunStatus
from studio.inbox.models import ReviewStatus
from studio.tenants.roles import Role
from tests.factories import make_member
from tests.flows.helpers import start, wait_run
from tests.studio.inbox.helpers import approval_flow, wait_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def test_list_claim_conflict_and_decide(trio):
    rita = session(make_member(trio.tenant, Role.REVIEWER, username="rita"))
    remy = session(make_member(trio.tenant, Role.REVIEWER, username="remy"))
    flow = approval_flow(trio.tenant)
    run = start(flow, {"amount": 12, "customer": "Ann"})
    review = wait_review(run)

    listed = rita.get("/api/v1/reviews/?status=open").json()
    assert [r["id"] for r in listed["results"]] == [review.pk]
    item = listed["results"][0]
    assert item["flow_name"] == "refunds" and item["proposal"] == {
        "reply": "We will refund you.",
        "amount": 12,
    }
    assert item["editable_schema"]["properties"]["reply"]["type"] == "string" and item["claimed_by"] is None

    assert rita.post(f"/api/v1/reviews/{review.pk}/claim/").json()["claimed_by"] == "rita"
    conflict = remy.post(f"/api/v1/reviews/{review.pk}/claim/")
    assert conflict.status_code == 409
    assert conflict.json()["error"] == {"code": "conflict", "message": "claimed by rita", "details": []}
    assert (
        remy.post(f"/api/v1/reviews/{review.pk}/decide/", {"decision": "approve"}, format="json").status_code
        == 409
    )
    assert remy.get("/api/v1/reviews/?assigned=me").json()["results"] == []
    assert [r["id"] for r in rita.get("/api/v1/reviews/?assigned=me").json()["results"]] == [review.pk]

    bad = rita.post(f"/api/v1/reviews/{review.pk}/decide/", {"decision": "edit", "output": {"amount": 1}},
                    format="json")  # fmt: skip
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "output.amount"
    edit = {"decision": "edit", "output": {"reply": "Refunded."}, "comment": "tone"}
    decided = rita.post(f"/api/v1/reviews/{review.pk}/decide/", edit, format="json")
    assert decided.status_code == 200, decided.json()
    body = decided.json()
    assert (
        body["status"] == "edited" and body["decided_by"] == "rita" and body["output"]["reply"] == "Refunded."
    )
    assert body["diff"] == [
        {"field": "reply", "before": "We will refund you.", "after": "Refunded.", "change": "changed"}
    ]
    again = rita.post(f"/api/v1/reviews/{review.pk}/decide/", {"decision": "reject"}, format="json")
    assert again.status_code == 200 and again.json()["status"] == "edited"  # idempotent
    assert wait_run(run).outputs == {"sent": "Refunded.", "amount": 12}
    assert rita.get("/api/v1/reviews/?status=open").json()["results"] == []

    metrics = rita.get("/api/v1/reviews/metrics/").json()
    assert metrics["overall"]["decided"] == 1 and metrics["overall"]["edit_rate"] == 1.0
    assert metrics["per_reviewer"][0]["reviewer"] == "rita"
    assert metrics["per_flow"][0]["flow_name"] == "refunds"
    assert metrics["overall"]["avg_time_to_claim_s"] >= 0 and metrics["overall"]["avg_time_to_decision_s"] > 0


def test_another_tenants_review_is_not_found_and_roles_are_checked(trio, api):
    run = start(approval_flow(trio.tenant), {"amount": 1})
    review = wait_review(run)
    outsider = session(trio.outsider)
    assert outsider.get(f"/api/v1/reviews/{review.pk}/").status_code == 404
    assert outsider.post(f"/api/v1/reviews/{review.pk}/claim/").status_code == 404
    assert (
        outsider.post(
            f"/api/v1/reviews/{review.pk}/decide/", {"decision": "approve"}, format="json"
        ).status_code
        == 404
    )
    assert outsider.get("/api/v1/reviews/").json()["results"] == []
    # A builder sees the queue but does not decide; a viewer does not even see it.
    builder = session(trio.teammate)
    assert builder.get("/api/v1/reviews/").status_code == 200
    assert (
        builder.post(
            f"/api/v1/reviews/{review.pk}/decide/", {"decision": "approve"}, format="json"
        ).status_code
        == 403
    )
    assert api(trio.tenant, Role.VIEWER).get("/api/v1/reviews/").status_code == 403
    # An API key with a deciding role decides directly (no claim).
    key = api(trio.tenant, Role.REVIEWER)
    assert key.post(f"/api/v1/reviews/{review.pk}/claim/").status_code == 400
    decided = key.post(
        f"/api/v1/reviews/{review.pk}/decide/", {"decision": "reject", "comment": "no"}, format="json"
    )
    assert decided.json()["status"] == "rejected" and decided.json()["decided_by"].startswith("api-key:")
    assert wait_run(run).outputs == {"dropped": "no"}


def test_bulk_approve_decides_each_item_and_reports_the_ones_it_could_not(trio):
    rita = session(make_member(trio.tenant, Role.REVIEWER, username="rita"))
    remy_user = make_member(trio.tenant, Role.REVIEWER, username="remy")
    flow = approval_flow(trio.tenant)
    runs = [start(flow, {"amount": n}) for n in range(3)]
    reviews = [wait_review(run) for run in runs]
    session(remy_user).post(f"/api/v1/reviews/{reviews[2].pk}/claim/")
    answer = rita.post("/api/v1/reviews/bulk-decide/", {"ids": [r.pk for r in reviews] + [999999],
                                                         "decision": "approve"}, format="json")  # fmt: skip
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["ok"] for r in results] == [True, True, False, False]
    assert results[2]["status"] == 409 and results[3]["status"] == 404
    for run in runs[:2]:
        assert wait_run(run).status == RunStatus.SUCCEEDED
    reviews[2].refresh_from_db()
    assert reviews[2].status == ReviewStatus.CLAIMED


def test_the_openapi_schema_describes_the_review_calls(trio):
    schema = session(trio.owner).get("/api/v1/schema/?format=json").json()
    for path in ("/api/v1/reviews/", "/api/v1/reviews/{id}/claim/", "/api/v1/reviews/{id}/decide/",
                 "/api/v1/reviews/bulk-decide/", "/api/v1/reviews/metrics/"):  # fmt: skip
        assert path in schema["paths"], path
