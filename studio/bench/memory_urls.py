"""Bench-only URLconf for ``bench memory``: the project's URLs plus a no-op twin of the search view.

``bench memory`` switches to it with ``override_settings(ROOT_URLCONF=...)`` for its run (which
clears the URL caches both ways); the product's URLs never contain the no-op view. The ``api/v1/``
include is rebuilt with the same patterns in the same order and the no-op path appended after
them, so the search URL resolves exactly as in ``studio.urls`` and the no-op URL resolves through
the same patterns first (the search pattern included) before its own.
"""

from __future__ import annotations

from django.urls import URLResolver, include, path
from rest_framework.exceptions import ParseError
from rest_framework.response import Response

from studio import urls as project
from studio.memory.api import SearchApi

FLOOR_PATH = "<str:namespace>/search-floor/"  # under api/v1/memory/


class SearchFloorApi(SearchApi):
    """The search view without the search: its authentication (API key), permission
    (``IsTenantMember`` with ``memory.read``), parser (orjson) and renderer, inherited; the body
    is parsed, then ``{"results": []}``. No validation, no query, nothing to serialise."""

    def post(self, request, namespace: str):
        if not isinstance(request.data, dict):  # parsed as the search view's body is
            raise ParseError("expected a JSON object")
        return Response({"results": []})


def _with(resolver: URLResolver, prefix: str, change) -> URLResolver:
    """``resolver`` again, the include under ``prefix`` among its patterns passed to ``change``."""
    patterns = [
        change(p) if isinstance(p, URLResolver) and str(p.pattern) == prefix else p
        for p in resolver.url_patterns
    ]
    return path(str(resolver.pattern), include((patterns, resolver.app_name), namespace=resolver.namespace))


def _memory_with_floor(resolver: URLResolver) -> URLResolver:
    floor = path(FLOOR_PATH, SearchFloorApi.as_view(), name="memory_search_floor")
    return path(str(resolver.pattern), include([*resolver.url_patterns, floor]))


urlpatterns = [
    _with(p, "memory/", _memory_with_floor)
    if isinstance(p, URLResolver) and str(p.pattern) == "api/v1/"
    else p
    for p in project.urlpatterns
]
