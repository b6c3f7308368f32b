"""Request-rate limits: token buckets in the real Redis, the API's 429s and headers, run starts,
and the settings page where a tenant's admins set them."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time

import pytest
import redis
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from flows.models import Run
from studio.governance.models import AuditEntry
from studio.realtime import redis_client
from studio.tenants import ratelimit
from studio.tenants.roles import Role
from studio.tenants.services import tenant_settings_set
from tests.factories import PASSWORD, make_api_key, make_member, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow

pytestmark = pytest.mark.usefixtures("fresh_buckets")


def limited(tenant, **limits):
    return tenant_settings_set(tenant=tenant, path=("rate_limits",), value=limits, actor="test")


def key_client(tenant, role: str = Role.BUILDER) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, role)}")
    return client


# -- the bucket ---------------------------------------------------------------------------------


def test_a_bucket_lets_its_size_through_then_refuses_until_it_refills():
    taken = [ratelimit.bucket_take("t:refill", per_second=20, size=3) for _ in range(3)]
    assert [(d.allowed, d.remaining) for d in taken] == [(True, 2), (True, 1), (True, 0)]
    assert all(d.limit == 3 for d in taken)
    assert 0.1 < taken[-1].reset_s <= 0.15  # three tokens at 20/s: full again in 0.15 s

    refused = ratelimit.bucket_take("t:refill", per_second=20, size=3)
    assert not refused.allowed and refused.remaining == 0
    assert 0 < refused.retry_after_s <= 0.05
    assert refused.headers()["Retry-After"] == "1"  # whole seconds, never 0

    time.sleep(refused.retry_after_s + 0.02)
    again = ratelimit.bucket_take("t:refill", per_second=20, size=3)
    assert again.allowed and again.remaining == 0


def evalsha_calls() -> int:
    return int(redis_client().info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_far_from_empty_a_process_asks_redis_once_in_about_fifty_calls_and_counts_them_all():
    before = evalsha_calls()
    started = time.monotonic()
    assert all(ratelimit.take("t:credit", 6000).allowed for _ in range(500))
    asked = evalsha_calls() - before
    assert 500 / (ratelimit.CREDIT_MAX + 1) <= asked <= 20
    ratelimit._credits["t:credit"].until = 0  # let the next call ask, with what it owes
    flushed = ratelimit.take("t:credit", 6000)
    refilled = (time.monotonic() - started) * 100  # 6000 a minute: 100 a second
    assert 6000 - 501 <= flushed.remaining <= 6000 - 501 + refilled + 1


def test_near_the_limit_every_call_asks_so_the_limit_is_exact():
    results = [ratelimit.take("t:exact", 400).allowed for _ in range(401)]
    assert results == [True] * 400 + [False]


def test_buckets_are_separate():
    assert ratelimit.bucket_take("t:a", per_second=0.01, size=1).allowed
    assert not ratelimit.bucket_take("t:a", per_second=0.01, size=1).allowed
    assert ratelimit.bucket_take("t:b", per_second=0.01, size=1).allowed


def test_concurrent_calls_never_overdraw_a_bucket():
    results: list[bool] = []
    barrier = threading.Barrier(24)

    def call() -> None:
        barrier.wait()
        results.append(ratelimit.bucket_take("t:race", per_second=0.01, size=5).allowed)

    threads = [threading.Thread(target=call) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 19 + [True] * 5


def test_without_redis_calls_go_through_and_the_log_says_so(caplog):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="studio.tenants.ratelimit"):
        decision = ratelimit.bucket_take("t:dead", per_second=1, size=1, client=dead)
    assert decision.allowed
    assert "rate limit t:dead not checked, Redis unavailable" in caplog.text


def test_typed_limits_are_checked_naming_the_field():
    assert ratelimit.parse_limits({"api_requests_per_minute": " 1,200 ", "runs_per_minute": ""}) == {
        "api_requests_per_minute": 1200
    }
    with pytest.raises(ValidationError) as bad:
        ratelimit.parse_limits({"api_requests_per_minute": "lots"})
    assert bad.value.message_dict == {
        "api_requests_per_minute": ["must be a whole number of calls per minute, not 'lots'"]
    }
    with pytest.raises(ValidationError) as bad:
        ratelimit.parse_limits({"runs_per_minute": "0"})
    assert bad.value.message_dict == {"runs_per_minute": ["must be from 1 to 1,000,000 per minute"]}


# -- API calls ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_api_calls_are_limited_per_key_with_headers_and_a_clear_429():
    tenant, other = make_tenant("Busy"), make_tenant("Calm")
    limited(tenant, api_requests_per_minute=3)
    first, second, elsewhere = key_client(tenant), key_client(tenant), key_client(other)

    answers = [first.get("/api/v1/flows/") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0]["RateLimit-Limit"] == "3"
    assert 0 < int(answers[-1]["RateLimit-Reset"]) <= 60

    refused = first.get("/api/v1/flows/")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["message"].startswith("rate limit: 3 API requests per minute for API key 'key ")
    assert error["details"] == [
        {"field": None, "limit": "api_requests_per_minute", "per_minute": 3, "retry_after_s": 20}
    ]
    assert refused["Retry-After"] == "20"  # a token every 20 s
    assert refused["RateLimit-Remaining"] == "0"

    assert second.get("/api/v1/flows/").status_code == 200  # each key has its own bucket
    calm = elsewhere.get("/api/v1/flows/")
    assert calm.status_code == 200 and calm["RateLimit-Limit"] == "6000"  # the platform default


@pytest.mark.django_db
def test_session_calls_are_limited_per_person(settings):
    tenant = make_tenant("Clicky")
    limited(tenant, api_requests_per_minute=2)
    alice, bob = make_member(tenant, Role.BUILDER), make_member(tenant, Role.BUILDER)
    browser = Client()
    assert browser.login(username=alice.username, password=PASSWORD)
    assert [browser.get("/api/v1/me/").status_code for _ in range(2)] == [200, 200]
    refused = browser.get("/api/v1/me/")
    assert refused.status_code == 429
    assert (
        f"2 API requests per minute for {alice.username} in {tenant.slug}"
        in refused.json()["error"]["message"]
    )
    other = Client()
    assert other.login(username=bob.username, password=PASSWORD)
    assert other.get("/api/v1/me/").status_code == 200


@pytest.mark.django_db
def test_a_platform_default_of_zero_limits_nothing(settings):
    settings.STUDIO_RATE_LIMITS = {"api_requests_per_minute": 0, "runs_per_minute": 0}
    client = key_client(make_tenant())
    answer = client.get("/api/v1/flows/")
    assert answer.status_code == 200 and "RateLimit-Limit" not in answer


# -- run starts ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_runs_asked_for_over_http_are_limited_per_tenant_and_a_refused_run_writes_nothing():
    tenant = make_tenant("Runner")
    limited(tenant, runs_per_minute=2)
    flow = published_flow(tenant, graph([node("t", "trigger"), node("o", "output")], [edge("t", "o")]))
    client = key_client(tenant)
    url = f"/api/v1/flows/{flow.pk}/runs/"

    first = client.post(url, {"inputs": {}}, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code in (200, 202)
    assert client.post(url, {"inputs": {}}, format="json").status_code in (200, 202)
    refused = client.post(url, {"inputs": {}}, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["message"].startswith(
        f"rate limit: 2 runs per minute for tenant {tenant.slug}"
    )
    assert int(refused["Retry-After"]) == 30
    assert Run.objects.filter(flow=flow).count() == 2

    # A repeat answered from its Idempotency-Key starts nothing, so it is not refused.
    repeat = client.post(url, {"inputs": {}}, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert repeat.status_code in (200, 202) and repeat.json()["id"] == first.json()["id"]

    # Webhooks and replays start runs too.
    hook = APIClient().post(f"/api/v1/hooks/{flow.webhook_token}/", {"q": 1}, format="json")
    assert hook.status_code == 429 and hook.json()["error"]["code"] == "rate_limited"
    replay = client.post(f"/api/v1/runs/{first.json()['id']}/replay/", {}, format="json")
    assert replay.status_code == 429
    assert Run.objects.filter(flow=flow).count() == 2


# -- the settings page ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_admin_sets_the_limits_on_the_api_keys_page():
    tenant = make_tenant("Setter")
    owner = make_member(tenant, Role.OWNER)
    page = Client()
    assert page.login(username=owner.username, password=PASSWORD)

    html = page.get("/settings/api-keys/").content.decode()
    assert "Rate limits" in html and 'name="api_requests_per_minute"' in html and "default 6000" in html
    title = re.search(r"<title>([^<]*)</title>", html)  # plain text, no markup
    assert title and title.group(1).startswith("API keys")

    saved = page.post(
        "/settings/api-keys/",
        {"action": "limits", "api_requests_per_minute": "120", "runs_per_minute": ""},
        follow=True,
    )
    assert "Rate limits saved." in saved.content.decode()
    tenant.refresh_from_db()
    assert tenant.settings["rate_limits"] == {"api_requests_per_minute": 120}
    assert ratelimit.limits_of(tenant) == {"api_requests_per_minute": 120, "runs_per_minute": 6000}
    entry = AuditEntry.objects.filter(tenant=tenant, action="settings.changed").latest("id")
    assert entry.target == "settings:rate_limits"
    assert json.loads(entry.data) == {"value": {"api_requests_per_minute": 120}}
    assert 'value="120"' in saved.content.decode()

    refused = page.post("/settings/api-keys/", {"action": "limits", "runs_per_minute": "-5"}, follow=True)
    assert "runs_per_minute: must be from 1 to 1,000,000 per minute" in refused.content.decode()
    tenant.refresh_from_db()
    assert tenant.settings["rate_limits"] == {"api_requests_per_minute": 120}  # unchanged


@pytest.mark.django_db
def test_a_builder_cannot_change_the_limits():
    tenant = make_tenant()
    builder = make_member(tenant, Role.BUILDER)
    page = Client()
    assert page.login(username=builder.username, password=PASSWORD)
    assert page.post("/settings/api-keys/", {"action": "limits", "runs_per_minute": "1"}).status_code == 403
    tenant.refresh_from_db()
    assert "rate_limits" not in tenant.settings
