"""Tenant budgets: counted per month, checked before model calls and before starting runs."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from flows.budget import _key, _redis, month_spend
from flows.models import RunStatus
from studio.tenants.roles import Role
from tests.factories import make_api_key, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, wait_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def hundred_token_flow(tenant):
    """trigger → a model step that reports 60 + 40 tokens → output."""
    answer = {"text": "ok", "tokens_in": 60, "tokens_out": 40}
    return published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("ask", script={"responses": [answer]}), node("o", "output")],
        [edge("trigger", "ask"), edge("ask", "o")],
    ))  # fmt: skip


def test_spending_is_counted_and_a_spent_budget_refuses_new_runs_with_429():
    tenant = make_tenant("Frugal")
    tenant.settings = {"budget": {"monthly_tokens": 150}}
    tenant.save()
    flow = hundred_token_flow(tenant)
    assert wait_run(start(flow)).status == RunStatus.SUCCEEDED
    assert month_spend(tenant.pk)[1] == 100
    assert wait_run(start(flow)).status == RunStatus.SUCCEEDED  # 100 < 150: still allowed
    assert month_spend(tenant.pk)[1] == 200

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, Role.BUILDER)}")
    refused = client.post(f"/api/v1/flows/{flow.pk}/runs/", {"inputs": {}}, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"] == {"code": "budget_exceeded", "details": [],
                                       "message": "the tenant's monthly budget of 150 tokens is spent"}  # fmt: skip


def test_a_model_step_stops_when_the_budget_runs_out_mid_run():
    tenant = make_tenant("Tight")
    tenant.settings = {"budget": {"monthly_cost_usd": 0.000001}}
    tenant.save()
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("first", script={"responses": ["a"]}),
         scripted_llm("second", script={"responses": ["b"]}), node("o", "output")],
        [edge("trigger", "first"), edge("first", "second"), edge("second", "o")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.FAILED
    assert run.error["node"] == "second"
    assert run.error["message"].startswith("the tenant's monthly budget of $0.000001 is spent")


def test_a_counter_lost_from_redis_is_rebuilt_from_the_steps_in_the_database():
    tenant = make_tenant("Forgetful")
    flow = hundred_token_flow(tenant)
    assert wait_run(start(flow)).status == RunStatus.SUCCEEDED
    assert month_spend(tenant.pk)[1] == 100
    _redis().delete(_key(tenant.pk))  # Redis flushed, or a new month began
    assert wait_run(start(flow)).status == RunStatus.SUCCEEDED
    assert month_spend(tenant.pk)[1] == 200  # both runs, the second one counted once
