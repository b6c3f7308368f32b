"""The HTTP connector: one outside HTTP call for the ``http`` node and for tools.

What it guarantees, and why:

- **No SSRF.** Only http and https; the host must match a non-empty ``allowed_hosts``;
  every address the host resolves to must be public unless the tenant opted in
  (``flows.connectors.ssrf``). Redirects are followed by hand, at most three, and each hop
  is checked again, so a public endpoint cannot bounce us to the metadata service.
- **No DNS rebinding.** The name is resolved once, the addresses are checked, and the
  connection goes to the checked address itself: the URL handed to httpx carries the IP,
  the ``Host`` header carries the original name, and for https the TLS handshake sends the
  name as SNI (``extensions={"sni_hostname": …}``), so the certificate is still verified
  against the name. httpx never resolves the name, so a second DNS answer cannot swap the
  address. Every request says ``Connection: close``, because a kept-alive connection is
  pooled by IP and could otherwise carry a request for another name that shares the IP
  over a TLS session verified for the first.
- **Bounded.** ``timeout_s`` is one budget for the whole call, redirects and body included;
  the body is streamed and reading stops at ``max_response_bytes``.
- **Exactly-once effects.** ``idempotency_key`` goes out as ``Idempotency-Key`` on every
  hop; callers cannot override it, nor ``Host``.
- **Honest errors.** ``retryable`` is True only where a later retry can succeed (429, 5xx,
  timeouts, connection failures); only those count against the circuit breaker.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import ssl
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from flows.connectors import CircuitOpen, ConnectorError, ResponseSchemaError, ResponseTooLarge
from flows.connectors.breaker import CircuitBreaker
from flows.connectors.ssrf import check_host, check_scheme

__all__ = ["HttpPolicy", "HttpRequest", "HttpResult", "http_call"]

USER_AGENT = "AgentFlowStudio/1"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
MAX_REDIRECTS = 3

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Headers the connector owns: Host and Idempotency-Key for the reasons above, the framing
# headers because httpx computes them (a caller's Transfer-Encoding would corrupt the request).
_RESERVED_HEADERS = frozenset(
    {"host", "idempotency-key", "content-length", "transfer-encoding", "connection"}
)
# A redirect to another origin keeps only these caller headers: any other one (Authorization,
# X-Api-Key, …) may carry a tenant's credential, which must not follow a redirect elsewhere.
_CROSS_ORIGIN_HEADERS = frozenset({"accept", "accept-language", "content-type", "user-agent"})
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ERROR_BODY_BYTES = 4096
_EXCERPT_CHARS = 200
_SCHEMA_MESSAGE_CHARS = 300


@dataclass
class HttpRequest:
    method: str  # GET POST PUT PATCH DELETE
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # dict/list → JSON; str → text; bytes → as is; None → no body
    timeout_s: float = 30.0  # the whole call: connect, redirects and reading the body
    max_response_bytes: int = 5 * 1024 * 1024
    idempotency_key: str = ""  # sent as "Idempotency-Key" when non-empty
    response_schema: dict | None = None  # JSON Schema the parsed response must match


@dataclass
class HttpPolicy:
    # fnmatch-style host patterns ("api.example.com", "*.example.com"); empty = any public host
    allowed_hosts: list[str] = field(default_factory=list)
    # private/loopback addresses allowed, but only for hosts matching allowed_hosts
    allow_private: bool = False


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: Any  # parsed JSON when the response is JSON, else text; None when empty
    elapsed_ms: float


@dataclass
class _Hop:
    """One request of a call; a redirect makes the next one."""

    method: str
    url: httpx.URL
    headers: dict[str, str]  # lower-case names, caller's and body's, without reserved ones
    content: bytes | None


@dataclass
class _Received:
    """What came back from the last hop, body already read (within the limit)."""

    status: int
    headers: httpx.Headers
    content: bytes
    encoding: str
    host: str


def http_call(
    request: HttpRequest,
    *,
    policy: HttpPolicy,
    breaker: CircuitBreaker | None = None,
    transport: httpx.BaseTransport | None = None,
) -> HttpResult:
    """Make ``request`` under ``policy``; return the 2xx result or raise a ConnectorError.

    Everything that can be refused without the network (method, schema, body, URL, SSRF) is
    checked before the breaker is asked, so a refused request never takes a breaker's
    half-open trial. ``transport`` replaces httpx's default transport (tests, custom TLS
    trust); the connector still connects to the checked address through it.
    """
    method = _checked_method(request.method)
    validator = _schema_validator(request.response_schema)
    content, body_headers = _encode_body(request.body)
    url = _parse_url(request.url)
    addresses = _check_target(url, policy)
    if breaker is not None and not breaker.allow():
        raise CircuitOpen(_circuit_open_message(breaker, url))
    started = time.monotonic()
    hop = _Hop(method, url, {**body_headers, **_caller_headers(request.headers)}, content)
    try:
        received = _send_following_redirects(
            hop,
            addresses,
            request=request,
            policy=policy,
            transport=transport,
            deadline=started + request.timeout_s,
        )
        body = _parse_body(received)
        if validator is not None:
            _validate(validator, body, received)
    except ConnectorError as exc:
        _record_outcome(breaker, exc)
        raise
    _record_outcome(breaker, None)
    return HttpResult(
        status=received.status,
        headers=dict(received.headers.items()),
        body=body,
        elapsed_ms=(time.monotonic() - started) * 1000,
    )


def _checked_method(method: str) -> str:
    upper = method.upper()
    if upper not in METHODS:
        raise ConnectorError(f"method {method!r} is not supported; use one of {', '.join(sorted(METHODS))}")
    return upper


def _schema_validator(schema: dict | None) -> Validator | None:
    """A validator for ``response_schema``, checked before the call so a bad schema costs no request."""
    if schema is None:
        return None
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ConnectorError(f"response_schema is not a valid JSON Schema: {exc.message}") from exc
    return validator_class(schema)


def _encode_body(body: Any) -> tuple[bytes | None, dict[str, str]]:
    """The bytes to send and their default Content-Type (the caller's own one wins)."""
    if body is None:
        return None, {}
    if isinstance(body, bytes):
        return body, {"content-type": "application/octet-stream"}
    if isinstance(body, str):
        return body.encode("utf-8"), {"content-type": "text/plain; charset=utf-8"}
    try:
        encoded = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConnectorError(f"request body cannot be sent as JSON: {exc}") from exc
    return encoded.encode("utf-8"), {"content-type": "application/json"}


def _caller_headers(headers: dict[str, str]) -> dict[str, str]:
    """The caller's headers by lower-case name, minus the ones the connector owns.

    Checked here so a bad header (often a rendered template) fails the step with its name,
    and never as a retryable transport error; CR/LF are refused so no header can be injected.
    """
    checked: dict[str, str] = {}
    for name, value in headers.items():
        text = str(value)
        if not _HEADER_NAME.fullmatch(name):
            raise ConnectorError(f"header name {name!r} is not a valid HTTP header name")
        if not text.isascii() or any(char in text for char in "\r\n\0"):
            raise ConnectorError(f"header {name}: the value must be ASCII on one line")
        if name.lower() not in _RESERVED_HEADERS:
            checked[name.lower()] = text
    return checked


def _parse_url(raw: str) -> httpx.URL:
    try:
        return httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConnectorError(f"invalid URL {raw!r}: {exc}") from exc


def _check_target(url: httpx.URL, policy: HttpPolicy) -> list[str]:
    """The checked addresses for ``url``'s host (SSRFRefused if the scheme or host is not allowed)."""
    check_scheme(url.scheme)
    port = url.port or (443 if url.scheme == "https" else 80)
    if not 0 < port < 65536:
        raise ConnectorError(f"port {port} is not a valid TCP port")
    # raw_host is the IDNA (punycode) form: what DNS resolves and what goes in Host.
    return check_host(url.raw_host.decode("ascii"), port, policy)


def _circuit_open_message(breaker: CircuitBreaker, url: httpx.URL) -> str:
    until = breaker.open_until()
    if until is None:
        return f"circuit breaker {breaker.key} is half-open (a trial call is running); not calling {url.host}"
    when = datetime.fromtimestamp(until, tz=UTC).isoformat(timespec="seconds")
    return f"circuit breaker {breaker.key} is open until {when}; not calling {url.host}"


def _record_outcome(breaker: CircuitBreaker | None, error: ConnectorError | None) -> None:
    """Only retryable failures count: a 4xx or a schema mismatch still means the service answered."""
    if breaker is None:
        return
    if error is not None and error.retryable:
        breaker.record_failure()
    else:
        breaker.record_success()


def _send_following_redirects(
    hop: _Hop,
    addresses: list[str],
    *,
    request: HttpRequest,
    policy: HttpPolicy,
    transport: httpx.BaseTransport | None,
    deadline: float,
) -> _Received:
    """Send ``hop``, following up to MAX_REDIRECTS redirects, each to a freshly checked target."""
    received = _exchange(hop, addresses[0], request=request, transport=transport, deadline=deadline)
    redirects = 0
    while received.status in _REDIRECT_STATUSES:
        if redirects == MAX_REDIRECTS:
            raise ConnectorError(
                f"{received.host} redirected more than {MAX_REDIRECTS} times", status=received.status
            )
        redirects += 1
        hop = _redirected(hop, received)
        addresses = _check_target(hop.url, policy)
        received = _exchange(hop, addresses[0], request=request, transport=transport, deadline=deadline)
    return received


def _redirected(hop: _Hop, received: _Received) -> _Hop:
    """The next hop after a redirect, with the method change browsers (and httpx) make."""
    location = received.headers["location"]
    try:
        url = hop.url.join(location)
    except httpx.InvalidURL as exc:
        raise ConnectorError(
            f"{received.host} redirected to an invalid URL {location!r}", status=received.status
        ) from exc
    method, content, headers = hop.method, hop.content, dict(hop.headers)
    if received.status in (302, 303) or (received.status == 301 and method == "POST"):
        method, content = "GET", None
        headers.pop("content-type", None)
    if _origin(url) != _origin(hop.url):
        headers = {name: value for name, value in headers.items() if name in _CROSS_ORIGIN_HEADERS}
    return _Hop(method, url, headers, content)


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port


def _exchange(
    hop: _Hop, address: str, *, request: HttpRequest, transport: httpx.BaseTransport | None, deadline: float
) -> _Received:
    """One request to ``address`` (already checked) on behalf of ``hop.url``'s host.

    Without a caller's transport, each hop gets a fresh one with no retries of its own:
    retries belong to the engine, which knows about backoff and idempotency.
    """
    host = hop.url.raw_host.decode("ascii")
    client = httpx.Client(
        transport=transport or httpx.HTTPTransport(verify=_ssl_context(), retries=0),
        trust_env=False,
        follow_redirects=False,
    )
    try:
        outgoing = client.build_request(
            hop.method,
            hop.url.copy_with(host=address),
            headers=_wire_headers(hop, request),
            content=hop.content,
            timeout=httpx.Timeout(_remaining(deadline, host, request.timeout_s)),
            extensions=_tls_extensions(hop.url),
        )
        response = client.send(outgoing, stream=True)
        try:
            return _receive(response, host, request=request, deadline=deadline)
        finally:
            response.close()
    except httpx.TimeoutException as exc:
        raise _timeout_error(host, request.timeout_s) from exc
    except httpx.LocalProtocolError as exc:  # our request is malformed: sending it again will not help
        raise ConnectorError(f"could not send the request to {host}: {exc}") from exc
    except httpx.TransportError as exc:
        # A certificate that does not verify will not start verifying on a retry.
        raise ConnectorError(
            f"could not reach {host}: {str(exc) or type(exc).__name__}",
            retryable=not _is_certificate_error(exc),
        ) from exc
    finally:
        if transport is None:
            client.close()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's verifying context (certifi's CAs), built once: loading the CA bundle per call is slow."""
    return httpx.create_ssl_context()


def _wire_headers(hop: _Hop, request: HttpRequest) -> dict[str, str]:
    headers = {"user-agent": USER_AGENT, "accept": "application/json, */*;q=0.5", **hop.headers}
    headers["host"] = hop.url.netloc.decode("ascii")
    headers["connection"] = "close"
    if request.idempotency_key:
        headers["idempotency-key"] = request.idempotency_key
    return headers


def _tls_extensions(url: httpx.URL) -> dict[str, str]:
    """SNI (and certificate name) for https: the original host, since the URL now holds an IP."""
    if url.scheme != "https":
        return {}
    host = url.raw_host.decode("ascii").rstrip(".")
    if _is_ip_literal(host):
        return {}
    return {"sni_hostname": host}


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _remaining(deadline: float, host: str, timeout_s: float) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timeout_error(host, timeout_s)
    return remaining


def _timeout_error(host: str, timeout_s: float) -> ConnectorError:
    return ConnectorError(f"{host} did not answer within timeout_s={timeout_s:g}", retryable=True)


def _is_certificate_error(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    for _ in range(10):  # the chain is short; the bound only guards against a cycle
        if cause is None:
            return False
        if isinstance(cause, ssl.SSLCertVerificationError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _receive(response: httpx.Response, host: str, *, request: HttpRequest, deadline: float) -> _Received:
    """Read what the status calls for: the body of a 2xx, nothing of a redirect, an excerpt of an error."""
    status = response.status_code
    if status in _REDIRECT_STATUSES and "location" in response.headers:
        return _Received(status, response.headers, b"", response.encoding or "utf-8", host)
    if 200 <= status < 300:
        content = _read_limited(response, host, limit=request.max_response_bytes, deadline=deadline)
        return _Received(status, response.headers, content, response.encoding or "utf-8", host)
    raise _status_error(response, host, _excerpt(response, deadline=deadline))


def _read_limited(response: httpx.Response, host: str, *, limit: int, deadline: float) -> bytes:
    """The whole (decoded) body, refusing once it passes ``limit`` instead of buffering it all."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLarge(
            f"response from {host} declares {declared} bytes, over max_response_bytes={limit}",
            status=response.status_code,
        )
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge(
                f"response from {host} is over max_response_bytes={limit}; stopped reading",
                status=response.status_code,
            )
        if time.monotonic() > deadline:
            raise ConnectorError(f"{host} did not finish the response within the timeout", retryable=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _excerpt(response: httpx.Response, *, deadline: float) -> str:
    """The start of an error body, on one line, for a message a builder can act on."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _ERROR_BODY_BYTES or time.monotonic() > deadline:
            break
    text = _decode_text(b"".join(chunks)[:_ERROR_BODY_BYTES], response.encoding or "utf-8")
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def _status_error(response: httpx.Response, host: str, excerpt: str) -> ConnectorError:
    """429 and 5xx may pass; any other non-2xx is the request's own fault and will repeat."""
    status = response.status_code
    retryable = status == 429 or status >= 500
    message = f"{host} answered {status} {response.reason_phrase}".rstrip()
    retry_after = response.headers.get("retry-after")
    if retryable and retry_after:
        message += f" (Retry-After: {retry_after})"
    if excerpt:
        message += f": {excerpt}"
    return ConnectorError(message, retryable=retryable, status=status)


def _parse_body(received: _Received) -> Any:
    """Parsed JSON when the response says it is JSON (and is), else text; None when empty."""
    if not received.content:
        return None
    media_type = received.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            return json.loads(received.content)
        except ValueError:
            pass  # mislabelled: hand it over as text, and let a response_schema reject it
    return _decode_text(received.content, received.encoding)


def _decode_text(content: bytes, encoding: str) -> str:
    try:
        return content.decode(encoding, errors="replace")
    except LookupError:  # a charset Python does not know
        return content.decode("utf-8", errors="replace")


def _validate(validator: Validator, body: Any, received: _Received) -> None:
    error = best_match(validator.iter_errors(body))
    if error is None:
        return
    detail = error.message
    if len(detail) > _SCHEMA_MESSAGE_CHARS:
        detail = detail[:_SCHEMA_MESSAGE_CHARS] + "…"
    raise ResponseSchemaError(
        f"response from {received.host} does not match response_schema at {error.json_path}: {detail}",
        status=received.status,
    )
