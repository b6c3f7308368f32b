from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import redirect
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from studio.api import error_json, is_api_request
from studio.health import health_report


@require_GET
@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def home(request):
    return redirect("flows:list")


# -- Django's error views: JSON in the API's error envelope under /api/, pages elsewhere ------------


def bad_request(request, exception):
    if is_api_request(request):
        return error_json(400, "bad request")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if is_api_request(request):
        return error_json(403, str(exception) or "you may not do this")
    return defaults.permission_denied(request, exception)


def not_found(request, exception):
    if is_api_request(request):
        return error_json(404, f"no API endpoint at {request.path} (see /api/v1/docs/)")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api_request(request):
        return error_json(500, "internal error (it has been logged)", code="server_error")
    return defaults.server_error(request)
