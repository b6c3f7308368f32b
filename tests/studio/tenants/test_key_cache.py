"""API keys kept per process (``studio.tenants.key_cache``): no query for a key already found,
and every change to keys and tenants heard at once, here and in the other processes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from studio.tenants import key_cache, services
from studio.tenants.models import ApiKey
from studio.tenants.roles import Role
from tests.conftest import wait_for
from tests.factories import make_api_key, make_tenant


def queries_to_find(raw: str) -> tuple[ApiKey | None, int]:
    with CaptureQueriesContext(connection) as queries:
        found = key_cache.find_active(raw)
    return found, len(queries)


@pytest.mark.django_db
def test_a_key_found_once_is_found_again_without_a_query(api_keys_kept):
    tenant = make_tenant()
    raw = make_api_key(tenant, Role.BUILDER)
    first, first_queries = queries_to_find(raw)
    again, again_queries = queries_to_find(raw)
    assert (first_queries, again_queries) == (1, 0)
    assert (again.role, again.tenant.slug) == (Role.BUILDER, tenant.slug)
    assert again is not first and again.tenant is not first.tenant  # fresh instances every time
    assert queries_to_find(raw + "x") == (None, 1)
    assert queries_to_find(raw + "x") == (None, 1)  # an unknown key is never kept


@pytest.mark.django_db
def test_revoking_a_key_or_changing_its_tenant_is_seen_by_the_next_call(api_keys_kept):
    tenant = make_tenant()
    raw = make_api_key(tenant, Role.BUILDER)
    key_cache.find_active(raw)
    services.tenant_settings_set(tenant=tenant, path=("theme",), value="dark")
    assert key_cache.find_active(raw).tenant.settings["theme"] == "dark"

    assert queries_to_find(raw)[1] == 0
    tenant.name = "Renamed"
    tenant.save()  # through the ORM
    assert key_cache.find_active(raw).tenant.name == "Renamed"

    key = ApiKey.objects.get(tenant=tenant)
    key.role = Role.VIEWER
    key.save()
    assert key_cache.find_active(raw).role == Role.VIEWER

    services.api_key_revoke(api_key=key)
    assert key_cache.find_active(raw) is None


@pytest.mark.django_db
def test_the_recorded_use_stays_with_the_kept_key(api_keys_kept):
    tenant = make_tenant()
    raw = make_api_key(tenant, Role.VIEWER)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/me/").status_code == 200
        return len(captured)

    first = queries()
    # The first call read the key and recorded its use; later calls within the minute neither
    # read the key nor write its use again.
    later = [queries() for _ in range(3)]
    assert first - later[0] == 2 and len(set(later)) == 1
    assert ApiKey.objects.get(tenant=tenant).last_used_at is not None


@pytest.mark.django_db
def test_without_the_listener_every_call_reads_the_database(api_keys_kept, settings, monkeypatch):
    from studio.embedded import free_port

    tenant = make_tenant()
    raw = make_api_key(tenant, Role.BUILDER)
    key_cache.find_active(raw)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    monkeypatch.setattr(key_cache, "_RETRY_S", (0.05,))
    key_cache._listener_of_process = None  # this process's listener, anew (the old one ends)
    try:
        assert [queries_to_find(raw)[1] for _ in range(3)] == [1, 1, 1]
        assert not key_cache._listener().live
    finally:
        key_cache._listener_of_process = None  # the next call subscribes again, on the real Redis


@pytest.mark.django_db(transaction=True)
def test_a_revocation_reaches_the_web_server_process(live_server_url):
    tenant = make_tenant()
    raw = make_api_key(tenant, Role.BUILDER)

    def status() -> int:
        request = urllib.request.Request(
            live_server_url + "/api/v1/me/", headers={"Authorization": f"Bearer {raw}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                assert json.load(response)["tenant"]["slug"] == tenant.slug
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert [status() for _ in range(5)] == [200] * 5  # kept there once its listener is up
    services.api_key_revoke(api_key=ApiKey.objects.get(tenant=tenant))
    wait_for(lambda: status() == 401, timeout=2, what="the revoked key refused by the web server")
