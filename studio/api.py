"""API conventions shared by every app: the error envelope and small helpers.

Errors are ``{"error": {"code", "message", "details"}}`` with the right status.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
}


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "the resource changed since you read it"
    default_code = "conflict"


def _flatten(detail, path: str = "") -> list[dict]:
    """DRF's nested error detail as a flat list of ``{"field": ..., "message": ...}``."""
    if isinstance(detail, dict):
        out: list[dict] = []
        for key, value in detail.items():
            out += _flatten(value, f"{path}.{key}" if path else str(key))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return [{"field": path or None, "message": str(item)} for item in detail]
        out = []
        for index, item in enumerate(detail):
            out += _flatten(item, f"{path}[{index}]")
        return out
    return [{"field": path or None, "message": str(detail)}]


def error_response(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    details: list | None = None,
    headers: dict | None = None,
) -> Response:
    body = {
        "error": {
            "code": code or _CODES.get(status_code, "error"),
            "message": message,
            "details": details or [],
        }
    }
    return Response(body, status=status_code, headers=headers)


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        details = _flatten(exc.detail)
        first = details[0] if details else {"field": None, "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        code = "invalid"
    else:
        details = []
        message = str(exc.detail) if hasattr(exc, "detail") else str(exc)
        code = getattr(exc, "default_code", None) or _CODES.get(response.status_code)
        if isinstance(getattr(exc, "detail", None), exceptions.ErrorDetail):
            code = exc.detail.code or code
    headers = {k: v for k, v in response.items() if k in {"WWW-Authenticate", "Retry-After", "Allow"}}
    return error_response(response.status_code, message, code=code, details=details, headers=headers)
