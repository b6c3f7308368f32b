from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse


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
