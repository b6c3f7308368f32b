"""The dashboard page: the tenant's figures over a period, overall, per flow and per node type."""

from __future__ import annotations

from django.shortcuts import render
from django.utils import timezone

from flows import selectors as flow_selectors
from studio.telemetry.selectors import DEFAULT_PERIOD, PERIODS, metrics_summary
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
        "nav": "dashboard", "summary": summary, "period": period, "periods": list(PERIODS), "flow": flow,
    })  # fmt: skip
