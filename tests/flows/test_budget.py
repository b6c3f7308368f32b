"""Tenant budgets: counted per month, checked before model calls and before starting runs."""

from __future__ import annotations

import pytest
from django.db.models import Sum
from rest_framework.test import APIClient

from flows.budget import month_spend
from flows.models import Run, RunStatus
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
    first = Run.objects.filter(flow=flow).earliest("id")
    replay = client.post(f"/api/v1/runs/{first.pk}/replay/", {}, format="json")
    assert replay.status_code == 429 and replay.json()["error"]["code"] == "budget_exceeded"


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


def test_spending_is_counted_once_per_step_with_the_steps_checkpoint():
    """Twelve runs at once on the workers: the month's count is exactly what their steps
    recorded (counted in each step's own transaction, over several rows)."""
    from flows.models import MonthlySpend, Run, StepRun

    tenant = make_tenant("Exact")
    flow = hundred_token_flow(tenant)
    runs = [start(flow) for _ in range(12)]
    assert all(wait_run(run).status == RunStatus.SUCCEEDED for run in runs)
    recorded = StepRun.objects.filter(run__in=Run.objects.filter(tenant=tenant)).aggregate(
        t_in=Sum("tokens_in"), t_out=Sum("tokens_out")
    )
    assert month_spend(tenant.pk)[1] == recorded["t_in"] + recorded["t_out"] == 1200
    assert MonthlySpend.objects.filter(tenant=tenant).count() > 1  # concurrent runs spread over rows
