"""The address and scheme checks every connector runs before it connects anywhere."""

from __future__ import annotations

import re
import socket

import pytest

from flows.connectors import ConnectorError, SSRFRefused
from flows.connectors.http import HttpPolicy, HttpRequest, http_call
from flows.connectors.ssrf import check_host, check_scheme, host_allowed, is_public_address
from tests.flows.connectors import FakeDNS


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "loopback address 127.0.0.1"),
        ("localhost", "loopback address 127.0.0.1"),
        ("10.1.2.3", "private address 10.1.2.3"),
        ("172.16.0.1", "private address 172.16.0.1"),
        ("192.168.1.1", "private address 192.168.1.1"),
        ("169.254.169.254", "link-local address 169.254.169.254"),
        ("[::1]", "loopback address ::1"),
        ("::ffff:127.0.0.1", "stands for 127.0.0.1"),
        ("100.64.0.1", "carrier-grade NAT address 100.64.0.1"),
        ("0.0.0.0", "unspecified address 0.0.0.0"),
        ("2130706433", "loopback address 127.0.0.1"),  # decimal spelling of 127.0.0.1
    ],
)
def test_non_public_targets_are_refused_with_the_reason(host: str, why: str):
    with pytest.raises(SSRFRefused) as refused:
        check_host(host, 80, HttpPolicy())
    assert why in str(refused.value)
    assert refused.value.retryable is False


def test_a_public_literal_address_passes_the_check_without_connecting():
    assert check_host("93.184.216.34", 443, HttpPolicy()) == ["93.184.216.34"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("::ffff:10.0.0.1", False),
        ("2002:a00:1::", False),  # 6to4 wrapping 10.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 wrapping 169.254.169.254
        ("fe80::1", False),
        ("fc00::1", False),
        ("2001:db8::1", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("198.18.0.1", False),
        ("::", False),
    ],
)
def test_is_public_address(address: str, public: bool):
    assert is_public_address(address) is public


@pytest.mark.parametrize("scheme", ["file", "gopher", "ftp", "dict"])
def test_only_http_and_https_schemes_are_allowed(scheme: str):
    with pytest.raises(SSRFRefused, match=f"scheme '{scheme}' is not allowed"):
        check_scheme(scheme)
    check_scheme("http")
    check_scheme("HTTPS")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1:70/_stats"])
def test_http_call_refuses_other_schemes(url: str):
    with pytest.raises(SSRFRefused, match="is not allowed"):
        http_call(HttpRequest("GET", url), policy=HttpPolicy(allowed_hosts=["*"], allow_private=True))


def test_a_name_resolving_to_a_private_address_is_refused_naming_host_and_address(dns: FakeDNS):
    dns.table["intranet.example.com"] = ["10.0.0.5"]
    with pytest.raises(
        SSRFRefused, match=re.escape("host intranet.example.com resolves to private address 10.0.0.5")
    ):
        check_host("intranet.example.com", 443, HttpPolicy())


def test_one_private_address_among_public_ones_is_enough_to_refuse(dns: FakeDNS):
    dns.table["mixed.example.com"] = ["93.184.216.34", "2606:4700:4700::1111", "127.0.0.1"]
    with pytest.raises(SSRFRefused, match=re.escape("loopback address 127.0.0.1")):
        check_host("mixed.example.com", 443, HttpPolicy())


def test_a_public_name_returns_every_checked_address(dns: FakeDNS):
    dns.table["api.example.com"] = ["93.184.216.34", "93.184.216.34", "2606:4700:4700::1111"]
    addresses = check_host("API.Example.com.", 443, HttpPolicy(allowed_hosts=["*.example.com"]))
    assert addresses == ["93.184.216.34", "2606:4700:4700::1111"]
    assert dns.lookups == ["api.example.com"]


def test_a_host_outside_allowed_hosts_is_refused_before_any_lookup(dns: FakeDNS):
    dns.table["evil.example.net"] = ["93.184.216.34"]
    with pytest.raises(SSRFRefused, match=re.escape("host evil.example.net is not in allowed_hosts")):
        check_host("evil.example.net", 443, HttpPolicy(allowed_hosts=["api.example.com"]))
    assert dns.lookups == []


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("api.example.com", True),
        ("deep.api.example.com", True),
        ("example.com", False),
        ("api.example.com.evil.net", False),
        ("apiexample.com", False),
    ],
)
def test_allowed_hosts_patterns_match_like_fnmatch(host: str, allowed: bool):
    assert host_allowed(host, ["*.example.com"]) is allowed


def test_allow_private_opens_only_the_hosts_named_in_allowed_hosts():
    assert check_host("127.0.0.1", 80, HttpPolicy(allowed_hosts=["127.0.0.1"], allow_private=True)) == [
        "127.0.0.1"
    ]
    with pytest.raises(SSRFRefused, match="allow_private applies only to hosts in allowed_hosts"):
        check_host("127.0.0.1", 80, HttpPolicy(allow_private=True))
    with pytest.raises(SSRFRefused, match="not in allowed_hosts"):
        check_host("10.0.0.7", 80, HttpPolicy(allowed_hosts=["127.0.0.1"], allow_private=True))


def test_a_name_that_does_not_exist_is_not_retryable_but_a_resolver_hiccup_is(dns: FakeDNS):
    dns.failures["typo.example.com"] = socket.EAI_NONAME
    dns.failures["flaky.example.com"] = socket.EAI_AGAIN
    with pytest.raises(ConnectorError, match=re.escape("could not resolve host typo.example.com")) as missing:
        check_host("typo.example.com", 443, HttpPolicy())
    assert missing.value.retryable is False
    with pytest.raises(ConnectorError, match=re.escape("could not resolve host flaky.example.com")) as flaky:
        check_host("flaky.example.com", 443, HttpPolicy())
    assert flaky.value.retryable is True
