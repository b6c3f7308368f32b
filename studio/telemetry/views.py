"""The dashboard page (the tenant's figures over a period, overall, per flow and per node type)
and Prometheus' ``/metrics``."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from flows import selectors as flow_selectors
from studio.telemetry.charts import dashboard_charts
from studio.telemetry.counters import exposition
from studio.telemetry.selectors import DEFAULT_PERIOD, PERIODS, metrics_summary, reviews_waiting_by_tenant
from studio.tenants.models import Tenant
from studio.tenants.views import member_required


@member_required("dashboard.view")
def dashboard(request):
    period = request.GET.get("period", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    tenant = request.actor.tenant
    flow_id = request.GET.get("flow", "")
    flow = (
        flow_selectors.flow_get(tenant=tenant, pk=int(flow_id), with_draft=False)
        if flow_id.isdigit()
        else None
    )
    summary = metrics_summary(tenant=tenant, since=timezone.now() - PERIODS[period], flow=flow)
    return render(request, "studio/dashboard.html", {
        "nav": "dashboard", "summary": summary, "charts": dashboard_charts(summary), "period": period,
        "periods": list(PERIODS), "flow": flow,
    })  # fmt: skip


LOOPBACK = ("127.0.0.1", "::1")


@require_GET
@never_cache
def prometheus_metrics(request):
    """Prometheus' scrape of the counters (``counters.exposition``). With ``METRICS_TOKEN`` set it
    answers only ``Authorization: Bearer <token>``; without one, only a client on this machine
    that came through no proxy (a local proxy would make every visitor look local)."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = HttpResponse(
                "metrics: a bearer token is required\n", status=401, content_type="text/plain"
            )
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif request.META.get("REMOTE_ADDR") not in LOOPBACK or any(
        h in request.headers for h in ("X-Forwarded-For", "Forwarded", "X-Real-Ip")
    ):
        return HttpResponse(
            "metrics: set METRICS_TOKEN to scrape from another machine\n",
            status=403,
            content_type="text/plain",
        )
    slugs = dict(Tenant.objects.values_list("id", "slug"))
    body = exposition(slugs, reviews_waiting_by_tenant())
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")
