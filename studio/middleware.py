from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse
from django.urls import is_valid_path

from studio.api import is_api_request


class RequestBodyLimitMiddleware:
    """Refuse bodies over ``MAX_REQUEST_BODY_BYTES`` with 413 before anything parses them."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.MAX_REQUEST_BODY_BYTES
        if length > limit:
            body = {
                "error": {
                    "code": "too_large",
                    "message": f"request body over {limit // (1024 * 1024)} MB",
                    "details": [],
                }
            }
            return HttpResponse(json.dumps(body), status=413, content_type="application/json")
        return self.get_response(request)


class ApiTrailingSlashMiddleware:
    """An API path given without its trailing slash is served as if it had it. Django's
    ``APPEND_SLASH`` would answer with a redirect instead, which HTTP clients follow by sending a
    POST again as a GET, without its body. Placed before ``CommonMiddleware``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if not path.endswith("/") and is_api_request(request):
            urlconf = getattr(request, "urlconf", None)
            if not is_valid_path(path, urlconf) and is_valid_path(f"{path}/", urlconf):
                request.path_info = f"{path}/"
                request.path = f"{request.path}/"
        return self.get_response(request)
