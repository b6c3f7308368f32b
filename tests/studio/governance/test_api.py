"""The governance API: approval policies and redaction rules, for owners and admins only,
with errors naming the field and removals that say what stands in their way."""

from __future__ import annotations

import pytest

from studio.memory import services as memory
from studio.tenants.roles import Role

pytestmark = pytest.mark.django_db


def test_policies_are_listed_added_and_removed(trio, api):
    admin = api(trio.tenant, Role.ADMIN)
    [built_in] = admin.get("/api/v1/policies/").json()["results"]
    assert built_in == {"name": "financial-changes", "capability": "billing.*", "when": "", "role": "admin",
                        "sla_s": None, "built_in": True}  # fmt: skip
    body = {"name": "price-moves", "capability": "pricing.publish", "when": "(input.change_pct | abs) > 10",
            "role": "reviewer", "sla_s": 3600}  # fmt: skip
    created = admin.post("/api/v1/policies/", body, format="json")
    assert created.status_code == 201 and created.json() == {**body, "built_in": False}
    assert [p["name"] for p in admin.get("/api/v1/policies/").json()["results"]] == [
        "financial-changes",
        "price-moves",
    ]

    bad = admin.post("/api/v1/policies/", {**body, "name": "other", "when": "input.x >"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "when"
    assert admin.post("/api/v1/policies/", {**body, "role": "viewer"}, format="json").status_code == 400

    assert admin.delete("/api/v1/policies/financial-changes/").status_code == 404  # built in: stays
    assert admin.delete("/api/v1/policies/price-moves/").status_code == 204
    assert admin.delete("/api/v1/policies/price-moves/").status_code == 404
    assert api(trio.tenant, Role.BUILDER).get("/api/v1/policies/").status_code == 403
    assert api(trio.other_tenant, Role.OWNER).get("/api/v1/policies/").json()["results"][1:] == []


def test_redaction_rules_are_listed_added_and_removed_unless_in_use(trio, api):
    owner = api(trio.tenant, Role.OWNER)
    names = [r["name"] for r in owner.get("/api/v1/redaction-rules/").json()["results"]]
    assert names == ["email", "card", "phone"]
    created = owner.post(
        "/api/v1/redaction-rules/", {"name": "order-id", "pattern": r"\bORD-\d{6}\b"}, format="json"
    )
    assert created.status_code == 201
    assert created.json() == {"name": "order-id", "pattern": r"\bORD-\d{6}\b", "replacement": "[order-id]",
                              "built_in": False}  # fmt: skip
    slow = owner.post("/api/v1/redaction-rules/", {"name": "slow", "pattern": "(a|aa)+$"}, format="json")
    assert slow.status_code == 400 and slow.json()["error"]["details"][0]["field"] == "pattern"

    trio.tenant.refresh_from_db()
    namespace = memory.memory_namespace_get_or_create(tenant=trio.tenant, name="orders")
    memory.memory_namespace_set_policy(namespace=namespace, ttl_seconds=None, max_items=None,
                                       redaction_rules=["order-id"])  # fmt: skip
    refused = owner.delete("/api/v1/redaction-rules/order-id/")
    assert refused.status_code == 400 and "namespace orders" in refused.json()["error"]["message"]
    memory.memory_namespace_set_policy(
        namespace=namespace, ttl_seconds=None, max_items=None, redaction_rules=[]
    )
    assert owner.delete("/api/v1/redaction-rules/order-id/").status_code == 204
    assert owner.delete("/api/v1/redaction-rules/order-id/").status_code == 404
    assert owner.delete("/api/v1/redaction-rules/email/").status_code == 404  # built in: stays
    assert (
        api(trio.tenant, Role.REVIEWER).post("/api/v1/redaction-rules/", {}, format="json").status_code == 403
    )
