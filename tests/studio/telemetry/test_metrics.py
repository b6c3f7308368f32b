"""The dashboard's figures: computed in PostgreSQL from runs and steps written as the engine
writes them, served by the API and the dashboard page, scoped to the tenant."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise

import pytest
from django.test import Client
from django.utils import timezone

from flows.models import Run, StepRun
from studio.telemetry.selectors import BUCKET_ORIGIN, MAX_POINTS, bucket_start, metrics_summary, series_bucket
from studio.tenants.roles import Role
from tests.factories import make_member, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow

DOC = graph([node("trigger", "trigger"), node("out", "output")], [edge("trigger", "out")])


def add_run(flow, *, status="succeeded", ms=None, ago=timedelta(hours=1), parent_step=None, steps=()):
    """A run ``ago`` old that took ``ms`` milliseconds, with ``steps``: (node type, status,
    latency_ms, tokens, cost)."""
    started = timezone.now() - ago
    run = Run.objects.create(
        tenant=flow.tenant, flow=flow, version=flow.versions.first(), status=status, parent_step=parent_step,
        started_at=started, finished_at=started + timedelta(milliseconds=ms) if ms is not None else None,
    )  # fmt: skip
    Run.objects.filter(pk=run.pk).update(created_at=started)
    for index, (node_type, step_status, latency, tokens, cost) in enumerate(steps):
        StepRun.objects.create(
            run=run, node_id=f"n{index}", node_type=node_type, status=step_status, latency_ms=latency,
            tokens_in=tokens, tokens_out=0, cost_usd=Decimal(cost), idempotency_key=f"{run.pk}-{index}",
        )  # fmt: skip
    return run


@pytest.fixture
def tenants():
    acme, globex = make_tenant("Acme"), make_tenant("Globex")
    support, pricing = published_flow(acme, DOC, name="Support"), published_flow(acme, DOC, name="Pricing")
    llm = ("llm", "succeeded", 10.0, 100, "0.002")
    for ms in (100, 200, 300):
        add_run(
            support,
            ms=ms,
            steps=[("trigger", "succeeded", 1.0, 0, "0"), llm, ("output", "succeeded", 1.0, 0, "0")],
        )
    add_run(
        support,
        status="failed",
        ms=50,
        steps=[("llm", "failed", 30.0, 0, "0"), ("output", "skipped", None, 0, "0")],
    )
    add_run(support, ms=5, ago=timedelta(days=9), steps=[llm])  # before the period
    mapped = add_run(pricing, ms=1000, steps=[("map", "succeeded", 900.0, 200, "0.004"),
                                              ("approval", "succeeded", 60_000.0, 0, "0")])  # fmt: skip
    add_run(pricing, parent_step=mapped.steps.get(node_type="map"), ms=400,
            steps=[("llm", "succeeded", 20.0, 200, "0.004")])  # a child run: its steps count, not the run  # fmt: skip
    add_run(published_flow(globex, DOC), ms=1, steps=[llm] * 1)  # another tenant
    return acme, globex, support, pricing


@pytest.mark.django_db
class TestSummary:
    def test_overall_per_flow_and_per_node_type(self, tenants):
        acme, _globex, support, pricing = tenants
        summary = metrics_summary(tenant=acme)
        o = summary.overall
        assert (o.runs, o.succeeded, o.failed) == (5, 4, 1)
        assert o.success_rate == 0.8 and o.error_rate == 0.2
        assert o.latency_p50_ms == pytest.approx(250.0)  # of 100, 200, 300, 1000
        # Actions: 3 + 1 llm steps of Support, the child's llm step, the approval; not triggers,
        # outputs that were skipped, or the map step (its child's step is counted instead).
        assert o.actions == 3 * 2 + 1 + 2
        assert o.tokens == 300 + 200 and o.cost_usd == Decimal("0.010")
        assert o.cost_per_1000_actions == Decimal("0.010") * 1000 / 9
        assert o.reviews == 1 and o.review_wait_p50_ms == 60_000.0

        flows = {flow.name: figures for flow, figures in summary.flows}
        assert [flow for flow, _ in summary.flows] == [support, pricing]  # most runs first
        assert flows["Support"].runs == 4 and flows["Support"].actions == 7
        assert flows["Pricing"].runs == 1 and flows["Pricing"].review_share == 0.5

        types = dict(summary.node_types)
        assert (
            types["llm"].actions == 5 and types["llm"].failed_actions == 1 and types["llm"].error_rate == 0.2
        )
        assert types["llm"].latency_p50_ms == 10.0 and types["approval"].latency_p95_ms == 60_000.0
        assert "trigger" not in types and "map" not in types

    def test_the_series_splits_the_same_figures_by_time(self, tenants):
        acme, _globex, _support, pricing = tenants
        now = timezone.now()
        old = add_run(pricing, ms=700, ago=timedelta(days=2, hours=3),
                      steps=[("llm", "succeeded", 10.0, 50, "0.001"), ("approval", "failed", 5.0, 0, "0")])  # fmt: skip
        summary = metrics_summary(tenant=acme, since=now - timedelta(days=7))
        assert summary.bucket == timedelta(hours=6)
        starts = [start for start, _ in summary.series]
        assert starts[0] == bucket_start(now - timedelta(days=7), summary.bucket) and starts[-1] <= now
        assert all(b - a == summary.bucket for a, b in pairwise(starts))
        assert len(starts) == 29  # every bucket of the week, empty ones too
        # Every run and action of the period is in one bucket, and the buckets add up to the whole.
        o = summary.overall
        assert sum(f.runs for _, f in summary.series) == o.runs == 6
        assert sum(f.actions for _, f in summary.series) == o.actions == 11
        assert sum(f.cost_usd for _, f in summary.series) == o.cost_usd == Decimal("0.011")
        by_start = dict(summary.series)
        recent = by_start[bucket_start(now - timedelta(hours=1), summary.bucket)]
        assert (recent.runs, recent.failed, recent.latency_p50_ms) == (5, 1, pytest.approx(250.0))
        earlier = by_start[bucket_start(old.started_at, summary.bucket)]  # its created_at, as add_run sets it
        assert (earlier.runs, earlier.latency_p50_ms) == (1, 700.0)
        assert (earlier.actions, earlier.failed_actions) == (2, 1)
        assert earlier.reviews == 1 and earlier.review_share == 0.5 and earlier.tokens == 50
        assert sum(1 for _, f in summary.series if f.runs) == 2

    def test_buckets_fit_the_period(self):
        assert series_bucket(timedelta(hours=24)) == timedelta(hours=1)
        assert series_bucket(timedelta(days=7)) == timedelta(hours=6)
        assert series_bucket(timedelta(days=30)) == timedelta(days=1)
        decades = timedelta(days=365 * 27)
        assert decades / series_bucket(decades) <= MAX_POINTS
        moment = BUCKET_ORIGIN + timedelta(days=3, hours=7, minutes=5)
        assert bucket_start(moment, timedelta(hours=6)) == BUCKET_ORIGIN + timedelta(days=3, hours=6)

    def test_one_flow_and_an_earlier_start(self, tenants):
        acme, _globex, support, _pricing = tenants
        summary = metrics_summary(tenant=acme, flow=support, since=timezone.now() - timedelta(days=30))
        assert summary.overall.runs == 5 and [f for f, _ in summary.flows] == [support]


@pytest.mark.django_db
class TestApiAndPage:
    def test_the_api_serves_the_summary(self, tenants, api):
        acme, globex, support, _pricing = tenants
        client = api(acme, Role.VIEWER)
        body = client.get("/api/v1/metrics/summary/").json()
        assert body["overall"]["runs"] == 5 and body["overall"]["error_rate"] == 0.2
        assert {row["flow_name"] for row in body["per_flow"]} == {"Support", "Pricing"}
        one = client.get(f"/api/v1/metrics/summary/?flow={support.pk}&since=2000-01-01T00:00:00Z").json()
        assert one["overall"]["runs"] == 5 and one["flow"] == support.pk
        assert one["bucket_seconds"] % 86400 == 0  # 26 years in whole days
        assert len(one["series"]) <= MAX_POINTS + 1
        assert sum(point["runs"] for point in one["series"]) == 5
        week = client.get("/api/v1/metrics/summary/").json()
        assert week["bucket_seconds"] == 6 * 3600 and len(week["series"]) == 29
        busy = [point for point in week["series"] if point["runs"]]
        assert sum(point["runs"] for point in busy) == 5
        assert {"start", "latency_p50_ms", "actions"} <= set(busy[0])
        assert client.get("/api/v1/metrics/summary/?since=soon").status_code == 400
        assert api(globex, Role.OWNER).get(f"/api/v1/metrics/summary/?flow={support.pk}").status_code == 404

    def test_the_dashboard_page(self, tenants):
        acme, _globex, _support, _pricing = tenants
        client = Client()
        client.force_login(make_member(acme, Role.VIEWER))
        html = client.get("/dashboard/?period=30d").content.decode()
        assert 'data-kpi="runs">6<' in html and "Support" in html and "<code>approval</code>" in html
        for key in ("runs", "latency", "cost", "review"):  # four charts, each drawn
            assert f'data-chart="{key}"' in html
        assert html.count("<svg") == 4 and "buckets of 1 day" in html
        assert ": 5 runs, 4 succeeded, 1 failed</title>" in html  # today's bar
        other = Client()
        other.force_login(make_member(make_tenant("Initech"), Role.OWNER))
        assert "No runs in this period" in other.get("/dashboard/").content.decode()
