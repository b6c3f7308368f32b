"""API conventions shared by every app: the error envelope and small helpers.

Errors are ``{"error": {"code", "message", "details"}}`` with the right status.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
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


def error_body(
    status_code: int, message: str, *, code: str | None = None, details: list | None = None
) -> dict:
    return {
        "error": {
            "code": code or _CODES.get(status_code, "error"),
            "message": message,
            "details": details or [],
        }
    }


def error_response(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    details: list | None = None,
    headers: dict | None = None,
) -> Response:
    return Response(
        error_body(status_code, message, code=code, details=details), status=status_code, headers=headers
    )


API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def error_json(status_code: int, message: str, *, code: str | None = None) -> JsonResponse:
    """The error envelope outside DRF's views: Django's own 404 and 500 for API paths."""
    return JsonResponse(error_body(status_code, message, code=code), status=status_code)


# -- query parameters ---------------------------------------------------------------------------


def _bad_parameter(name: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({name: [message]})


def _given(request, name: str) -> str | None:
    """The query parameter's text, None when it is absent or empty."""
    return request.query_params.get(name) or None


def query_int(request, name: str, *, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer query parameter, or a 400 naming it."""
    if (raw := _given(request, name)) is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad_parameter(name, f"must be a whole number, not {raw[:40]!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise _bad_parameter(name, f"must be {bounds}")
    return value


def query_datetime(request, name: str) -> datetime | None:
    """An ISO 8601 date-time query parameter (UTC when it names no offset), or a 400 naming it."""
    if (raw := _given(request, name)) is None:
        return None
    try:
        value = parse_datetime(raw)
    except ValueError:
        value = None
    if value is None:
        raise _bad_parameter(
            name, f"must be an ISO 8601 date-time such as 2026-01-31T09:00:00Z, not {raw[:40]!r}"
        )
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def query_choice(request, name: str, choices: Iterable[str], *, default: str | None = None) -> str | None:
    """A query parameter that must be one of ``choices``, or a 400 naming it and them."""
    if (raw := _given(request, name)) is None:
        return default
    allowed = list(choices)
    if raw not in allowed:
        raise _bad_parameter(name, f"must be one of {', '.join(allowed)}; not {raw[:40]!r}")
    return raw


def keyset_page(request, rows: list, limit: int) -> tuple[list, str | None]:
    """Rows fetched as ``limit + 1`` of a newest-first list paged by ``?before=<id>``: the page,
    and the URL of the next one (this request's query with ``before`` set to the page's last id),
    or None on the last page."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    query = request.GET.copy()  # a DRF request passes GET through to Django's
    query["before"] = str(rows[-1].pk)
    return rows, f"{request.path}?{query.urlencode()}"


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
        details = list(getattr(exc, "details", None) or [])
        message = str(exc.detail) if hasattr(exc, "detail") else str(exc)
        code = getattr(exc, "default_code", None) or _CODES.get(response.status_code)
        if isinstance(getattr(exc, "detail", None), exceptions.ErrorDetail):
            code = exc.detail.code or code
    headers = {k: v for k, v in response.items() if k in {"WWW-Authenticate", "Retry-After", "Allow"}}
    headers.update(getattr(exc, "response_headers", None) or {})  # a rate limit's, for one
    return error_response(response.status_code, message, code=code, details=details, headers=headers)
