from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from studio.health import health_report
from studio.tenants.views import member_required


@require_GET
@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def home(request):
    return redirect("flows:list")


@member_required("dashboard.view")
def dashboard(request):
    return render(request, "studio/dashboard.html", {"nav": "dashboard"})
