"""The HTTP connector against a real server on 127.0.0.1.

The server is on loopback, so these calls use a policy that opts in to it by name
(``LOOPBACK``); the tests at the end show the same calls refused without that opt-in.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from flows.connectors import ConnectorError, ResponseSchemaError, ResponseTooLarge, SSRFRefused
from flows.connectors.http import HttpPolicy, HttpRequest, HttpResult, http_call
from tests.flows.connectors import FakeDNS, LocalServer

LOOPBACK = HttpPolicy(allowed_hosts=["127.0.0.1"], allow_private=True)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def call(server: LocalServer, path: str, *, policy: HttpPolicy = LOOPBACK, **fields) -> HttpResult:
    return http_call(HttpRequest(url=server.url(path), **{"method": "GET", **fields}), policy=policy)


def test_json_body_goes_out_and_the_json_answer_comes_back_parsed(server: LocalServer):
    result = call(server, "/echo", method="post", body={"order": 42, "note": "café"})

    assert result.status == 200
    assert result.body["method"] == "POST"
    assert result.body["json"] == {"order": 42, "note": "café"}
    assert result.headers["content-type"] == "application/json"
    assert result.elapsed_ms > 0
    [received] = server.requests
    assert received.headers["content-type"] == "application/json"
    assert received.headers["user-agent"] == "AgentFlowStudio/1"


def test_the_idempotency_key_and_host_cannot_be_overridden_by_caller_headers(server: LocalServer):
    headers = {"idempotency-KEY": "forged", "Host": "evil.example", "X-Trace": "t-1"}
    call(server, "/echo", method="POST", body={}, headers=headers, idempotency_key="run-7:step-3:1")

    [received] = server.requests
    assert received.headers["idempotency-key"] == "run-7:step-3:1"
    assert received.headers["host"] == f"127.0.0.1:{server.port}"
    assert received.headers["x-trace"] == "t-1"


def test_a_repeated_step_reaches_the_receiver_with_one_distinct_key(server: LocalServer):
    for _ in range(3):
        call(server, "/echo", method="PUT", body=[1, 2], idempotency_key="run-9:step-1")

    assert [r.body for r in server.requests] == [b"[1,2]"] * 3
    assert {r.headers["idempotency-key"] for r in server.requests} == {"run-9:step-1"}


def test_text_goes_out_as_text_and_non_json_comes_back_as_text(server: LocalServer):
    echoed = call(server, "/echo", method="PATCH", body="just words")
    assert echoed.body["text"] == "just words"
    assert server.requests[0].headers["content-type"] == "text/plain; charset=utf-8"

    assert call(server, "/text").body == "plain words"
    assert call(server, "/not-json").body == "{oops"


def test_a_slow_server_is_a_retryable_timeout_naming_host_and_timeout(server: LocalServer):
    started = time.monotonic()
    with pytest.raises(ConnectorError) as failed:
        call(server, "/slow", timeout_s=0.3)

    assert time.monotonic() - started < 1.5
    assert failed.value.retryable is True
    assert "127.0.0.1" in str(failed.value)
    assert "timeout_s=0.3" in str(failed.value)


def test_a_streamed_body_past_the_limit_stops_reading(server: LocalServer):
    with pytest.raises(ResponseTooLarge, match="max_response_bytes=65536") as too_large:
        call(server, "/huge", max_response_bytes=64 * 1024)
    assert too_large.value.retryable is False


def test_a_declared_length_past_the_limit_is_refused_before_reading(server: LocalServer):
    with pytest.raises(ResponseTooLarge, match="declares 10485760 bytes"):
        call(server, "/huge-declared", max_response_bytes=1024 * 1024)


@pytest.mark.parametrize("status", [500, 503, 429])
def test_server_errors_and_throttling_are_retryable_with_their_status(server: LocalServer, status: int):
    with pytest.raises(ConnectorError) as failed:
        call(server, f"/status/{status}")
    assert failed.value.retryable is True
    assert failed.value.status == status
    if status == 429:
        assert "Retry-After: 7" in str(failed.value)


def test_a_client_error_is_not_retryable_and_quotes_the_body(server: LocalServer):
    with pytest.raises(ConnectorError) as failed:
        call(server, "/status/404")

    assert failed.value.retryable is False
    assert failed.value.status == 404
    message = str(failed.value)
    assert message.startswith("127.0.0.1 answered 404 Not Found: status body: no such widget padding")
    assert len(message) < 300


def test_a_redirect_to_another_path_is_followed_with_the_same_key(server: LocalServer):
    result = call(server, "/redirect/echo", idempotency_key="k-1")

    assert result.body["path"] == "/echo?from=redirect"
    assert [r.path for r in server.requests] == ["/redirect/echo", "/echo?from=redirect"]
    assert {r.headers["idempotency-key"] for r in server.requests} == {"k-1"}


def test_see_other_turns_a_post_into_a_get_and_307_keeps_it(server: LocalServer):
    after_303 = call(server, "/redirect/see-other", method="POST", body={"a": 1})
    assert after_303.body["method"] == "GET"
    assert after_303.body["text"] == ""

    after_307 = call(server, "/redirect/keep-method", method="POST", body={"a": 1})
    assert after_307.body["method"] == "POST"
    assert after_307.body["json"] == {"a": 1}


def test_a_redirect_to_the_metadata_service_is_refused(server: LocalServer):
    with pytest.raises(SSRFRefused, match=re.escape("169.254.169.254")):
        call(server, "/redirect/metadata")
    assert [r.path for r in server.requests] == ["/redirect/metadata"]


def test_a_redirect_to_another_scheme_is_refused(server: LocalServer):
    with pytest.raises(SSRFRefused, match="scheme 'gopher' is not allowed"):
        call(server, "/redirect/gopher")


def test_redirects_stop_after_three(server: LocalServer):
    with pytest.raises(ConnectorError, match="redirected more than 3 times") as failed:
        call(server, "/redirect/loop")
    assert failed.value.retryable is False
    assert len(server.requests) == 4


def test_a_redirect_to_another_origin_drops_credentials(server: LocalServer):
    with LocalServer() as other:
        server.elsewhere = other.url("/echo")
        headers = {"Authorization": "Bearer secret", "X-Api-Key": "secret", "Accept": "application/json"}
        result = call(
            server, "/redirect/elsewhere", method="POST", body={"a": 1}, headers=headers, idempotency_key="k"
        )

    assert result.body["json"] == {"a": 1}
    assert server.requests[0].headers["authorization"] == "Bearer secret"
    [arrived] = other.requests
    assert "authorization" not in arrived.headers
    assert "x-api-key" not in arrived.headers
    assert arrived.headers["accept"] == "application/json"
    assert arrived.headers["idempotency-key"] == "k"
    assert arrived.headers["host"] == f"127.0.0.1:{other.port}"


def test_a_response_matching_the_schema_is_returned(server: LocalServer):
    schema = {"type": "object", "required": ["id", "items"], "properties": {"id": {"type": "integer"}}}
    assert call(server, "/schema", response_schema=schema).body["id"] == 1


def test_a_response_not_matching_the_schema_names_the_failing_path(server: LocalServer):
    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"properties": {"name": {"type": "string"}}}}},
    }
    with pytest.raises(
        ResponseSchemaError, match=r"at \$\.items\[1\]\.name: 2 is not of type 'string'"
    ) as bad:
        call(server, "/schema", response_schema=schema)
    assert bad.value.retryable is False
    assert bad.value.status == 200


def test_an_invalid_schema_is_refused_before_calling(server: LocalServer):
    with pytest.raises(ConnectorError, match="response_schema is not a valid JSON Schema"):
        call(server, "/schema", response_schema={"type": "no-such-type"})
    assert server.requests == []


def test_unsupported_methods_and_bodies_are_refused_before_calling(server: LocalServer):
    with pytest.raises(ConnectorError, match="method 'TRACE' is not supported"):
        call(server, "/echo", method="TRACE")
    with pytest.raises(ConnectorError, match="cannot be sent as JSON"):
        call(server, "/echo", method="POST", body={"when": object()})
    assert server.requests == []


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"X-Note": "café"}, "header X-Note: the value must be ASCII on one line"),
        ({"X-Note": "a\r\nX-Injected: 1"}, "header X-Note: the value must be ASCII on one line"),
        ({"Bad Name": "x"}, "header name 'Bad Name' is not a valid HTTP header name"),
    ],
)
def test_malformed_headers_are_refused_by_name_before_calling(server: LocalServer, headers: dict, why: str):
    with pytest.raises(ConnectorError, match=re.escape(why)) as failed:
        call(server, "/echo", headers=headers)
    assert failed.value.retryable is False
    assert server.requests == []


def test_an_impossible_port_is_refused_before_calling():
    with pytest.raises(ConnectorError, match="port 99999 is not a valid TCP port") as failed:
        http_call(HttpRequest("GET", "http://127.0.0.1:99999/"), policy=LOOPBACK)
    assert failed.value.retryable is False


def test_the_package_exports_what_nodes_use():
    import flows.connectors as package

    assert package.http_call is http_call
    assert {"HttpPolicy", "HttpRequest", "HttpResult", "breaker_for", "CircuitBreaker"} <= set(
        package.__all__
    )


def test_a_refused_connection_is_retryable_and_names_the_host():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(ConnectorError, match=re.escape("could not reach 127.0.0.1")) as failed:
        http_call(HttpRequest("GET", f"http://127.0.0.1:{port}/"), policy=LOOPBACK)
    assert failed.value.retryable is True


def test_the_same_call_is_refused_under_the_default_policy(server: LocalServer):
    with pytest.raises(SSRFRefused, match=re.escape("host 127.0.0.1 resolves to loopback address 127.0.0.1")):
        call(server, "/echo", policy=HttpPolicy())
    assert server.requests == []


def test_allow_private_does_not_open_hosts_missing_from_allowed_hosts(server: LocalServer):
    with pytest.raises(SSRFRefused, match=re.escape("host 127.0.0.1 is not in allowed_hosts")):
        call(server, "/echo", policy=HttpPolicy(allowed_hosts=["api.example.com"], allow_private=True))
    with pytest.raises(SSRFRefused, match="allow_private applies only to hosts in allowed_hosts"):
        call(server, "/echo", policy=HttpPolicy(allow_private=True))
    assert server.requests == []


def test_the_connection_is_pinned_to_the_checked_address(server: LocalServer, dns: FakeDNS):
    """DNS rebinding: the name is resolved once; a later answer is never used to connect."""
    dns.table["api.test"] = ["127.0.0.1"]
    policy = HttpPolicy(allowed_hosts=["api.test"], allow_private=True)
    first = http_call(HttpRequest("GET", server.url("/echo", host="api.test")), policy=policy)
    dns.table["api.test"] = ["169.254.169.254"]  # what a rebinding attacker answers next

    assert first.body["headers"]["host"] == f"api.test:{server.port}"
    assert dns.lookups == ["api.test"]
    # A new call resolves afresh, and checks what it gets.
    with pytest.raises(
        SSRFRefused, match=re.escape("api.test resolves to link-local address 169.254.169.254")
    ):
        http_call(HttpRequest("GET", server.url("/echo", host="api.test")), policy=HttpPolicy(["api.test"]))
    assert len(server.requests) == 1


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path, bytes]:
    """A certificate for ``name`` (and its key), acting as its own CA for the client."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert_pem


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[LocalServer, httpx.HTTPTransport, list[str | None]]]:
    """An https server for api.test on 127.0.0.1; yields it, a transport trusting it, the SNI names seen."""
    cert_path, key_path, cert_pem = _self_signed(tmp_path, "api.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_path, key_path)
    sni_seen: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _ctx: sni_seen.append(name)
    client_context = ssl.create_default_context(cadata=cert_pem.decode())
    transport = httpx.HTTPTransport(verify=client_context, retries=0)
    with LocalServer(ssl_context=server_context) as running:
        yield running, transport, sni_seen
    transport.close()


def test_https_connects_to_the_checked_ip_but_sends_and_verifies_the_name(tls_server, dns: FakeDNS):
    server, transport, sni_seen = tls_server
    dns.table["api.test"] = ["127.0.0.1"]
    policy = HttpPolicy(allowed_hosts=["api.test"], allow_private=True)

    result = http_call(
        HttpRequest("GET", server.url("/echo", host="api.test", scheme="https")),
        policy=policy,
        transport=transport,
    )

    assert result.body["headers"]["host"] == f"api.test:{server.port}"
    assert sni_seen == ["api.test"]
    assert dns.lookups == ["api.test"]


def test_https_refuses_a_certificate_for_another_name(tls_server, dns: FakeDNS):
    server, transport, _ = tls_server
    dns.table["other.test"] = ["127.0.0.1"]
    policy = HttpPolicy(allowed_hosts=["other.test"], allow_private=True)

    with pytest.raises(ConnectorError, match=re.escape("could not reach other.test")) as failed:
        http_call(
            HttpRequest("GET", server.url("/echo", host="other.test", scheme="https")),
            policy=policy,
            transport=transport,
        )
    assert failed.value.retryable is False
    assert server.requests == []


def test_ipv4_literal_in_ipv6_form_is_judged_as_ipv4(server: LocalServer):
    mapped = ipaddress.IPv6Address("::ffff:127.0.0.1")
    with pytest.raises(SSRFRefused, match=re.escape("stands for 127.0.0.1")):
        http_call(HttpRequest("GET", f"http://[{mapped}]:{server.port}/echo"), policy=HttpPolicy())
    assert server.requests == []
