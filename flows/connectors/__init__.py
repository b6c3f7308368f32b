"""Connectors: the code that lets a flow reach the outside world (HTTP for now).

The package re-exports what callers need (``from flows.connectors import http_call, …``).
The errors are defined here, above those imports, so that ``ssrf.py`` (shared by every
connector) and ``http.py`` can both import them from the package without importing each
other: the package body always runs first, whichever submodule is imported.

Every error says whether a retry can help (``retryable``): the engine reads that flag to
decide between backing off and failing the step, and the circuit breaker counts only
retryable failures, because a 404 or a refused address says nothing about the remote
service being unhealthy.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A call to the outside world that did not produce a usable result."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status


class SSRFRefused(ConnectorError):
    """The target is not allowed by policy (scheme, host, or the address it resolves to).

    Never retryable: the same URL under the same policy is refused again.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, retryable=False, status=status)


class CircuitOpen(ConnectorError):
    """The breaker for this tenant and connector is open; the call was not attempted.

    Retryable, because the breaker closes again by itself once the remote side recovers.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class ResponseTooLarge(ConnectorError):
    """The response body went past ``max_response_bytes``; reading stopped there."""


class ResponseSchemaError(ConnectorError):
    """The response did not match the ``response_schema`` the node declared."""


# Below the errors on purpose: the submodules import them from this package (see above).
from flows.connectors.breaker import CircuitBreaker, breaker_for  # noqa: E402
from flows.connectors.http import HttpPolicy, HttpRequest, HttpResult, http_call  # noqa: E402

__all__ = [
    "CircuitBreaker",
    "CircuitOpen",
    "ConnectorError",
    "HttpPolicy",
    "HttpRequest",
    "HttpResult",
    "ResponseSchemaError",
    "ResponseTooLarge",
    "SSRFRefused",
    "breaker_for",
    "http_call",
]
