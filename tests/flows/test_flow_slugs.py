"""Flow slugs: made from the name, unique among a tenant's live flows, kept on rename."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from rest_framework.test import APIClient

from flows import services
from flows.models import Flow
from studio.tenants.roles import Role
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def builder(trio, api) -> APIClient:
    return api(trio.tenant, Role.BUILDER)


def create(client: APIClient, name: str, **more) -> dict:
    return client.post("/api/v1/flows/", {"name": name, **more}, format="json")


def test_slugs_come_from_names_numbered_when_taken_and_per_tenant(trio, builder, api):
    first, second = create(builder, "Support triage!").json(), create(builder, "Support  triage").json()
    assert (first["slug"], second["slug"]) == ("support-triage", "support-triage-2")
    assert create(api(trio.other_tenant, Role.BUILDER), "Support triage").json()["slug"] == "support-triage"
    assert create(builder, "★★★").json()["slug"] == "flow"  # nothing left of the name

    builder.delete(f"/api/v1/flows/{first['id']}/")
    assert create(builder, "Support triage").json()["slug"] == "support-triage"  # a deleted flow's is free
    long = create(builder, "x" * 120).json()["slug"]
    assert long == "x" * 80 and create(builder, "x" * 120).json()["slug"] == "x" * 78 + "-2"


def test_a_rename_keeps_the_slug_and_a_slug_can_be_set_when_free(builder):
    flow = create(builder, "Pricing").json()
    renamed = builder.patch(f"/api/v1/flows/{flow['id']}/", {"name": "Pricing v2"}, format="json").json()
    assert (renamed["name"], renamed["slug"]) == ("Pricing v2", "pricing")
    moved = builder.patch(f"/api/v1/flows/{flow['id']}/", {"slug": "prices"}, format="json")
    assert moved.status_code == 200 and moved.json()["slug"] == "prices"
    other = create(builder, "Other", slug="chosen").json()
    assert other["slug"] == "chosen"


@pytest.mark.parametrize("slug", ["prices", "Not A Slug", "x" * 81])
def test_a_taken_or_malformed_slug_is_refused_naming_the_field(builder, slug):
    create(builder, "Prices")
    flow = create(builder, "Elsewhere").json()
    refused = builder.patch(f"/api/v1/flows/{flow['id']}/", {"slug": slug}, format="json")
    assert refused.status_code == 400
    assert [d["field"] for d in refused.json()["error"]["details"]] == ["slug"]
    assert Flow.objects.get(pk=flow["id"]).slug == "elsewhere"  # unchanged
    on_create = create(builder, "Another", slug=slug)
    assert on_create.status_code == 400 and on_create.json()["error"]["details"][0]["field"] == "slug"
    assert not Flow.objects.filter(name="Another").exists()


def test_the_migration_gives_existing_flows_free_slugs():
    fill_slugs = importlib.import_module("flows.migrations.0006_flow_slug").fill_slugs
    tenant, other = make_tenant("Acme"), make_tenant("Globex")
    flows = [services.flow_create(tenant=t, name=n) for t, n in
             [(tenant, "Triage"), (tenant, "Triage"), (tenant, "Pricing"), (other, "Triage")]]  # fmt: skip
    gone = services.flow_create(tenant=tenant, name="Triage")
    services.flow_delete(flow=gone)
    for index, flow in enumerate([*flows, gone]):
        Flow.objects.filter(pk=flow.pk).update(slug=f"before-{index}")
    fill_slugs(apps, None)
    slugs = {f.pk: f.slug for f in Flow.objects.all()}
    assert [slugs[f.pk] for f in flows] == ["triage", "triage-2", "pricing", "triage"]
    assert slugs[gone.pk] == "triage"  # deleted flows are not counted against live ones


def test_the_flows_list_finds_a_flow_by_its_slug(builder):
    create(builder, "Refund desk", slug="refunds")
    create(builder, "Pricing")
    found = builder.get("/api/v1/flows/", {"search": "refunds"}).json()["results"]
    assert [f["name"] for f in found] == ["Refund desk"]


@pytest.mark.django_db(transaction=True)
def test_flows_created_at_once_under_one_name_all_get_their_own_slug():
    """Each create reads the free slug, then inserts: one that lost the race to the same slug
    reads again instead of failing."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from django.db import connection

    tenant = make_tenant("Racers")
    barrier = Barrier(6)

    def create_one(_) -> str:
        try:
            barrier.wait()
            return services.flow_create(tenant=tenant, name="Race").slug
        finally:
            connection.close()

    with ThreadPoolExecutor(6) as pool:
        slugs = list(pool.map(create_one, range(6)))
    assert sorted(slugs) == sorted(["race", *(f"race-{n}" for n in range(2, 7))])
