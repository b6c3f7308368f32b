"""API keys, roles and tenant isolation through the REST API (owner / teammate / outsider)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from studio.tenants import key_cache, services
from studio.tenants.models import ApiKey, Secret, Tenant
from studio.tenants.roles import Role
from studio.tenants.selectors import api_key_find_active as find_active
from studio.tenants.selectors import secret_value
from tests.factories import make_api_key

pytestmark = pytest.mark.django_db


def test_a_request_without_credentials_is_401_in_the_error_envelope():
    response = APIClient().get("/api/v1/me/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_an_api_key_acts_in_its_tenant_with_its_role(trio, api):
    response = api(trio.tenant, Role.BUILDER).get("/api/v1/me/")
    assert response.status_code == 200
    assert response.json()["tenant"]["slug"] == trio.tenant.slug
    assert response.json()["role"] == "builder"


def test_an_unknown_key_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer afs_not-a-real-key")
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "unknown or revoked API key"


def test_a_revoked_key_stops_working_at_once(trio):
    raw = make_api_key(trio.tenant, Role.ADMIN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get("/api/v1/me/").status_code == 200
    services.api_key_revoke(api_key=ApiKey.objects.get(tenant=trio.tenant))
    assert client.get("/api/v1/me/").status_code == 401


def test_keys_are_stored_hashed_and_record_their_last_use(trio):
    raw = make_api_key(trio.tenant, Role.VIEWER)
    key = ApiKey.objects.get(tenant=trio.tenant)
    assert raw not in (key.key_hash, key.prefix) and raw.startswith(key.prefix)
    assert key.last_used_at is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    client.get("/api/v1/me/")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_the_key_is_found_with_its_tenant_in_one_query_and_a_revoked_one_is_not(trio):
    raw = make_api_key(trio.tenant, Role.BUILDER)
    ApiKey.objects.filter(tenant=trio.tenant).update(name="ci")
    Tenant.objects.filter(pk=trio.tenant.pk).update(settings={"theme": "dark"})
    with CaptureQueriesContext(connection) as queries:
        key = find_active(raw_key=raw)
        found = (key.name, key.role, key.tenant.slug, key.tenant.settings)
    assert found == ("ci", Role.BUILDER, trio.tenant.slug, {"theme": "dark"})
    assert len(queries) == 1
    assert find_active(raw_key=raw + "x") is None
    services.api_key_revoke(api_key=key)
    assert find_active(raw_key=raw) is None


def test_a_busy_key_records_its_use_at_most_once_a_minute(trio):
    raw = make_api_key(trio.tenant, Role.VIEWER)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def writes() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/me/").status_code == 200
        return sum(q["sql"].startswith("UPDATE") for q in queries)

    assert [writes(), writes(), writes()] == [1, 0, 0]
    key = ApiKey.objects.get(tenant=trio.tenant)
    # A minute later: the use recorded that long ago, and the key this process kept read again.
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timedelta(minutes=2))
    key_cache.forget()
    assert [writes(), writes()] == [1, 0]
    # A process holding an old value does not write over a use another one recorded meanwhile.
    recorded = ApiKey.objects.get(pk=key.pk).last_used_at
    key.last_used_at = recorded - timedelta(minutes=2)
    services.api_key_touch(api_key=key)
    assert ApiKey.objects.get(pk=key.pk).last_used_at == recorded


def test_session_members_use_the_api_in_their_current_tenant(trio):
    client = APIClient()
    client.force_login(trio.teammate)
    assert client.get("/api/v1/me/").json()["role"] == "builder"


@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.OWNER, 200), (Role.ADMIN, 200), (Role.BUILDER, 403), (Role.REVIEWER, 403), (Role.VIEWER, 403)],
)
def test_only_owners_and_admins_manage_secrets(trio, api, role, status):
    response = api(trio.tenant, role).get("/api/v1/secrets/")
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["code"] == "permission_denied"


def test_secrets_are_write_only_and_encrypted_at_rest(trio, api):
    client = api(trio.tenant, Role.ADMIN)
    created = client.post(
        "/api/v1/secrets/", {"name": "anthropic_api_key", "value": "sk-ant-SECRET"}, format="json"
    )
    assert created.status_code == 201
    assert "sk-ant-SECRET" not in json.dumps(created.json())
    listed = client.get("/api/v1/secrets/")
    assert "sk-ant-SECRET" not in listed.content.decode()
    assert [s["name"] for s in listed.json()["results"]] == ["anthropic_api_key"]
    row = Secret.objects.get(tenant=trio.tenant)
    assert "sk-ant-SECRET" not in row.ciphertext
    assert secret_value(tenant=trio.tenant, name="anthropic_api_key") == "sk-ant-SECRET"

    replaced = client.put(f"/api/v1/secrets/{row.id}/", {"value": "sk-ant-NEW"}, format="json")
    assert replaced.status_code == 200
    assert secret_value(tenant=trio.tenant, name="anthropic_api_key") == "sk-ant-NEW"


def test_a_bad_secret_name_is_a_400_naming_the_field(trio, api):
    response = api(trio.tenant, Role.OWNER).post(
        "/api/v1/secrets/", {"name": "9 bad", "value": "x"}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"][0]["field"] == "name"
    assert error["message"].startswith("name:")


def test_a_missing_field_is_a_400_naming_it(trio, api):
    response = api(trio.tenant, Role.OWNER).post("/api/v1/secrets/", {"name": "token"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == [{"field": "value", "message": "This field is required."}]


def test_another_tenants_secret_is_a_404_not_a_403(trio, api):
    theirs = services.secret_set(tenant=trio.other_tenant, name="stripe_key", value="sk_live_x")
    client = api(trio.tenant, Role.OWNER)
    assert client.delete(f"/api/v1/secrets/{theirs.id}/").status_code == 404
    assert client.put(f"/api/v1/secrets/{theirs.id}/", {"value": "y"}, format="json").status_code == 404
    assert Secret.objects.filter(pk=theirs.pk).exists()
    assert secret_value(tenant=trio.other_tenant, name="stripe_key") == "sk_live_x"


def test_another_tenants_key_cannot_be_revoked(trio, api):
    make_api_key(trio.other_tenant, Role.BUILDER)
    theirs = ApiKey.objects.get(tenant=trio.other_tenant)
    response = api(trio.tenant, Role.OWNER).delete(f"/api/v1/api-keys/{theirs.id}/")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_a_new_key_is_shown_once(trio, api):
    client = api(trio.tenant, Role.ADMIN)
    created = client.post("/api/v1/api-keys/", {"name": "helpdesk", "role": "builder"}, format="json")
    assert created.status_code == 201
    raw = created.json()["key"]
    assert raw.startswith("afs_")
    assert raw not in client.get("/api/v1/api-keys/").content.decode()
    fresh = APIClient()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert fresh.get("/api/v1/me/").json()["role"] == "builder"


def test_an_admin_cannot_mint_an_owner_key(trio, api):
    response = api(trio.tenant, Role.ADMIN).post(
        "/api/v1/api-keys/", {"name": "x", "role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert not ApiKey.objects.filter(role="owner").exists()


def test_bodies_over_10_mb_are_refused_with_413_before_parsing(trio, api):
    client = api(trio.tenant, Role.OWNER)
    big = "x" * (10 * 1024 * 1024 + 1)
    response = client.generic("POST", "/api/v1/secrets/", big, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_the_openapi_schema_is_served(trio, api):
    response = api(trio.tenant, Role.VIEWER).get(
        "/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json"
    )
    assert response.status_code == 200
    assert "/api/v1/secrets/" in response.content.decode()


def test_the_api_docs_page_is_served_without_a_cdn(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert "cdn" not in html.lower()
