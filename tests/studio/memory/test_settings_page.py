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
