"""Settings → Memory: owners and admins see the embedder, namespaces with counts, policies and
purges; they edit retention, pick the embedder and forget a subject. Others are refused."""

from __future__ import annotations

import pytest
from django.test import Client

from studio.memory import services
from studio.memory.models import MemoryItem, MemoryNamespace
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

URL = "/settings/memory/"


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_page_shows_the_embedder_namespaces_and_says_hashing_is_in_use(trio):
    services.memory_add_one(tenant=trio.tenant, namespace="support", content="hello there")
    services.memory_add_one(tenant=trio.other_tenant, namespace="theirs", content="not ours")
    html = logged_in(trio.owner).get(URL).content.decode()
    assert "Hashing embedder in use" in html
    assert "<code>support</code>" in html and "theirs" not in html
    assert 'href="/settings/memory/"' in html and 'aria-current="page">Memory' in html


def test_builders_and_outsiders_cannot_open_it(trio):
    assert logged_in(trio.teammate).get(URL).status_code == 403
    assert logged_in(trio.outsider).get(URL).status_code == 200  # their own tenant's page
    assert "support" not in logged_in(trio.outsider).get(URL).content.decode()


def test_an_owner_sets_a_policy_and_the_embedder_and_forgets_a_subject(trio):
    client = logged_in(trio.owner)
    response = client.post(URL, {"action": "policy", "namespace": "chat", "ttl_days": "7", "max_items": "500",
                                 "redaction_rules": ["email", "card"]})  # fmt: skip
    assert response.status_code == 302
    ns = MemoryNamespace.objects.get(tenant=trio.tenant, name="chat")
    assert (ns.ttl_seconds, ns.max_items, sorted(ns.redaction_rules)) == (7 * 86400, 500, ["card", "email"])

    client.post(URL, {"action": "embedder", "kind": "http", "shape": "voyage", "model": "voyage-3", "dims": "1024",
                      "secret": "voyage_key"})  # fmt: skip
    trio.tenant.refresh_from_db()
    assert trio.tenant.settings["memory"]["embedder"] == {
        "kind": "http", "shape": "voyage", "url": "", "model": "voyage-3", "dims": 1024, "secret": "voyage_key"
    }  # fmt: skip
    assert "HTTP voyage · voyage-3 · 1024 dims" in client.get(URL).content.decode()

    services.memory_add_one(tenant=trio.tenant, namespace="chat", content="about ari", subject="ari")
    response = client.post(URL, {"action": "forget", "subject": "ari"}, follow=True)
    assert "Forgot 1 item(s)" in response.content.decode()
    assert not MemoryItem.objects.filter(subject="ari").exists()
    assert "Forget subject" in response.content.decode()  # the purge, listed


def test_a_bad_value_is_reported_not_saved(trio):
    client = logged_in(trio.owner)
    response = client.post(URL, {"action": "policy", "namespace": "chat", "ttl_days": "-1"}, follow=True)
    assert "ttl_days: must be positive" in response.content.decode()
    response = client.post(URL, {"action": "embedder", "kind": "http", "model": "", "dims": "8"}, follow=True)
    assert "needs a model name" in response.content.decode()


def test_a_namespace_page_lists_items_tests_a_search_and_pins_and_deletes(trio):
    keep = services.memory_add_one(tenant=trio.tenant, namespace="support", content="Refunds for damaged parcels",
                                   subject="ada", metadata={"kind": "policy"})  # fmt: skip
    drop = services.memory_add_one(tenant=trio.tenant, namespace="support", content="Shipping to Norway")
    client = logged_in(trio.owner)
    page = client.get(f"{URL}support/")
    html = page.content.decode()
    assert page.status_code == 200
    assert (
        "Refunds for damaged parcels" in html and "Shipping to Norway" in html and "2</strong> items" in html
    )
    assert 'href="?subject=ada"' in html

    found = client.get(f"{URL}support/?q=damaged+parcels").content.decode()
    results = found.split('data-testid="search-results"')[1].split("</table>")[0]
    assert results.index("Refunds for damaged parcels") < results.index("Shipping to Norway")
    assert "must not be empty" not in found

    response = client.post(f"{URL}support/?q=damaged", {"action": "pin", "item": keep.pk}, follow=True)
    assert response.redirect_chain[-1][0] == f"{URL}support/?q=damaged"
    assert f"Item {keep.pk} pinned" in response.content.decode()
    assert MemoryItem.objects.get(pk=keep.pk).pinned
    response = client.post(f"{URL}support/", {"action": "delete", "item": drop.pk}, follow=True)
    assert f"Item {drop.pk} deleted" in response.content.decode()
    assert list(MemoryItem.objects.filter(tenant=trio.tenant).values_list("pk", flat=True)) == [keep.pk]
    response = client.post(f"{URL}support/", {"action": "delete", "item": drop.pk}, follow=True)
    assert "is not in support" in response.content.decode()

    only_ada = client.get(f"{URL}support/?subject=nobody").content.decode()
    assert "No items about nobody here." in only_ada


def test_a_namespace_page_is_the_tenants_own(trio):
    services.memory_add_one(tenant=trio.tenant, namespace="support", content="ours")
    assert logged_in(trio.outsider).get(f"{URL}support/").status_code == 404
    assert logged_in(trio.outsider).post(f"{URL}support/", {"action": "delete", "item": 1}).status_code == 302
    assert MemoryItem.objects.filter(tenant=trio.tenant).count() == 1
    assert logged_in(trio.teammate).get(f"{URL}support/").status_code == 403
    assert logged_in(trio.owner).get(f"{URL}nowhere/").status_code == 404


def test_a_tenant_rule_redacts_memory_and_cannot_be_removed_while_a_namespace_applies_it(trio):
    client = logged_in(trio.owner)
    response = client.post("/settings/redaction/", {"name": "order-id", "pattern": r"\bORD-\d{6}\b",
                                                    "replacement": "[order]"}, follow=True)  # fmt: skip
    assert "Rule order-id added" in response.content.decode()
    assert 'data-rule="order-id"' in response.content.decode()
    tried = client.get("/settings/redaction/", {"sample": "ORD-123456 from ada@example.com"}).content.decode()
    assert "[order] from [email]" in tried

    assert 'value="order-id"' in client.get(URL).content.decode()  # offered on the memory page
    client.post(URL, {"action": "policy", "namespace": "orders", "redaction_rules": ["email", "order-id"]})
    item = services.memory_add_one(
        tenant=trio.tenant, namespace="orders", content="Refund ORD-654321 to ada@example.com"
    )
    assert item.content == "Refund [order] to [email]"

    response = client.post("/settings/redaction/", {"action": "remove", "name": "order-id"}, follow=True)
    assert "order-id is applied by namespace orders: untick it there first" in response.content.decode()
    client.post(URL, {"action": "policy", "namespace": "orders", "redaction_rules": ["email"]})
    response = client.post("/settings/redaction/", {"action": "remove", "name": "order-id"}, follow=True)
    assert "Rule order-id removed." in response.content.decode()
    response = client.post(
        URL, {"action": "policy", "namespace": "orders", "redaction_rules": ["order-id"]}, follow=True
    )
    assert "unknown rule(s): order-id" in response.content.decode()

    bad = client.post("/settings/redaction/", {"name": "slow", "pattern": "(a|aa)+$"}, follow=True)
    assert "pattern: too slow" in bad.content.decode()
    assert logged_in(trio.teammate).get("/settings/redaction/").status_code == 403
