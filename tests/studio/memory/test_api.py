"""The memory API: items one by one and in batches, search, delete, forget, namespaces — and
tenant B never seeing tenant A's memory."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from studio.memory.models import MemoryItem, MemoryPurge
from studio.tenants.roles import Role

pytestmark = pytest.mark.django_db

BASE = "/api/v1/memory"


@pytest.fixture
def owner_api(trio, api):
    return api(trio.tenant, Role.BUILDER)


@pytest.fixture
def outsider_api(trio, api):
    return api(trio.other_tenant, Role.OWNER)


def add(client, namespace: str, **item):
    return client.post(f"{BASE}/{namespace}/items/", item, format="json")


def search(client, namespace: str, query: str, **extra):
    return client.post(f"{BASE}/{namespace}/search/", {"query": query, **extra}, format="json")


def test_an_item_is_stored_redacted_and_found_by_search(owner_api):
    response = add(owner_api, "support", content="Refund policy: write to ana@example.com or call +44 20 7946 0958",
                   subject="cust-1", metadata={"lang": "en"})  # fmt: skip
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["content"] == "Refund policy: write to [email] or call [phone]"
    assert body["namespace"] == "support" and body["subject"] == "cust-1"
    assert MemoryItem.objects.get(pk=body["id"]).content == body["content"]  # redacted before it was stored

    results = search(owner_api, "support", "refund policy").json()["results"]
    assert [r["id"] for r in results] == [body["id"]]
    assert results[0]["score"] > 0.3 and results[0]["metadata"] == {"lang": "en"}
    assert "example.com" not in str(search(owner_api, "support", "ana@example.com").json())


def test_a_batch_is_added_in_one_call_and_filters_and_min_score_apply(owner_api):
    items = [
        {"content": f"note about {topic}", "metadata": {"topic": topic}} for topic in ("billing", "shipping")
    ]
    response = owner_api.post(f"{BASE}/notes/items/", {"items": items}, format="json")
    assert response.status_code == 201
    assert [i["content"] for i in response.json()["items"]] == ["note about billing", "note about shipping"]
    found = search(owner_api, "notes", "note about billing", k=5, filter={"topic": "shipping"}).json()[
        "results"
    ]
    assert [r["content"] for r in found] == ["note about shipping"]
    assert search(owner_api, "notes", "billing", min_score=0.99).json()["results"] == []
    assert [r["content"] for r in search(owner_api, "notes", "billing", min_score=0.2).json()["results"]] == [
        "note about billing"
    ]


def test_another_tenant_never_sees_the_items(owner_api, outsider_api):
    item = add(owner_api, "support", content="secret plan for acme").json()
    assert search(outsider_api, "support", "secret plan for acme").json()["results"] == []
    add(outsider_api, "support", content="secret plan for globex")
    results = search(outsider_api, "support", "secret plan for acme", k=10).json()["results"]
    assert [r["content"] for r in results] == ["secret plan for globex"]
    assert outsider_api.delete(f"{BASE}/support/items/{item['id']}/").status_code == 404
    assert MemoryItem.objects.filter(pk=item["id"]).exists()
    assert outsider_api.post(f"{BASE}/forget/", {"subject": ""}, format="json").status_code == 400
    names = [n["name"] for n in outsider_api.get(f"{BASE}/").json()["results"]]
    assert names == ["support"]  # its own namespace, not ours


def test_namespaces_list_counts_and_sizes(owner_api):
    add(owner_api, "a", content="one")
    add(owner_api, "a", content="two")
    add(owner_api, "b", content="three")
    rows = {r["name"]: r for r in owner_api.get(f"{BASE}/").json()["results"]}
    assert {name: row["count"] for name, row in rows.items()} == {"a": 2, "b": 1}
    assert rows["a"]["size_bytes"] > rows["b"]["size_bytes"] > 384 * 4
    assert rows["a"]["dims"] == 384 and rows["a"]["embedder"].startswith("hashing")


def test_delete_removes_the_item_and_records_the_purge(trio, owner_api):
    item = add(owner_api, "support", content="to be deleted").json()
    assert owner_api.delete(f"{BASE}/support/items/{item['id']}/").status_code == 204
    assert search(owner_api, "support", "to be deleted").json()["results"] == []
    purge = MemoryPurge.objects.get(tenant=trio.tenant)
    assert (purge.namespace, purge.reason, purge.count) == ("support", "delete", 1)


def test_forget_erases_a_subject_everywhere_and_search_no_longer_finds_it(trio, owner_api):
    add(owner_api, "support", content="Dana prefers email", subject="dana")
    add(owner_api, "sales", content="Dana bought the pro plan", subject="dana")
    add(owner_api, "sales", content="Eli bought the pro plan", subject="eli")
    response = owner_api.post(f"{BASE}/forget/", {"subject": "dana"}, format="json")
    assert response.json() == {"deleted": 2, "namespaces": {"support": 1, "sales": 1}}
    assert search(owner_api, "support", "Dana prefers email").json()["results"] == []
    assert [
        r["subject"] for r in search(owner_api, "sales", "Dana bought the pro plan").json()["results"]
    ] == ["eli"]
    purges = MemoryPurge.objects.filter(tenant=trio.tenant, reason="subject")
    assert sorted((p.namespace, p.count) for p in purges) == [("sales", 1), ("support", 1)]
    assert all(p.subject_digest and "dana" not in p.subject_digest for p in purges)


def test_an_empty_query_is_a_400_naming_the_field(owner_api):
    response = search(owner_api, "support", "   ")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "query"


def test_oversize_content_is_a_400_naming_the_field(owner_api):
    response = add(owner_api, "support", content="x" * 20_001)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "content"
    batch = owner_api.post(
        f"{BASE}/support/items/", {"items": [{"content": "ok"}, {"content": ""}]}, format="json"
    )
    assert batch.status_code == 400
    assert batch.json()["error"]["details"][0]["field"] == "items.1.content"
    assert not MemoryItem.objects.exists()


def test_a_vector_of_another_dimension_is_refused_with_a_clear_error(owner_api):
    add(owner_api, "support", content="first item fixes the dimension")
    response = add(owner_api, "support", content="precomputed", embedding=[0.1] * 1536)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "dimension_mismatch"
    assert error["details"][0]["field"] == "embedding"
    assert "has 1536 dimensions but namespace 'support' holds 384-dimensional" in error["message"]
    bad_search = owner_api.post(f"{BASE}/support/search/", {"vector": [1.0] * 3}, format="json")
    assert bad_search.status_code == 400 and bad_search.json()["error"]["code"] == "dimension_mismatch"


def test_roles_decide_who_reads_and_writes(trio, api):
    reviewer, viewer = api(trio.tenant, Role.REVIEWER), api(trio.tenant, Role.VIEWER)
    assert add(reviewer, "support", content="x").status_code == 403
    assert search(reviewer, "support", "x").status_code == 200
    assert search(viewer, "support", "x").status_code == 403


def test_a_vector_search_is_one_query_and_writes_nothing(owner_api, api_keys_kept):
    first = add(owner_api, "vectors", content="a stored fact").json()
    vector = [0.0] * 383 + [1.0]
    url = f"{BASE}/vectors/search/"
    assert owner_api.post(url, {"vector": vector, "k": 3}, format="json").status_code == 200
    with CaptureQueriesContext(connection) as queries:
        response = owner_api.post(url, {"vector": vector, "k": 3}, format="json")
    assert response.status_code == 200 and [r["id"] for r in response.json()["results"]] == [first["id"]]
    # The search, its SET LOCALs in the same round trip (the key is known from the first call).
    assert len(queries) == 1, [q["sql"][:60] for q in queries]
    assert not any(q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "SAVEPOINT")) for q in queries)


def test_a_body_that_is_not_json_or_not_numbers_is_a_400_in_the_envelope(owner_api):
    url = f"{BASE}/vectors/search/"
    for body in ('{"vector": [NaN, 1.0]}', '{"vector": [1.0, 2', '{"vector": [1e999]}'):
        response = owner_api.post(url, body, content_type="application/json")
        assert response.status_code == 400, body
        assert response.json()["error"]["message"].startswith("JSON parse error"), body
    response = owner_api.post(url, {"vector": [True, 1.0]}, format="json")
    assert response.status_code == 400 and response.json()["error"]["details"][0]["field"] == "vector"


def test_line_separators_in_content_are_escaped_in_the_json(owner_api):
    body = add(owner_api, "support", content="first line\u2028second line").json()
    response = search(owner_api, "support", "first line second line")
    assert b"\\u2028" in response.content and b"\xe2\x80\xa8" not in response.content
    assert response.json()["results"][0]["content"] == body["content"] == "first line\u2028second line"


def test_items_are_listed_newest_first_in_pages_and_by_subject(owner_api, outsider_api):
    ids = [add(owner_api, "support", content=f"fact {i}", subject="ada" if i % 2 else "").json()["id"]
           for i in range(5)]  # fmt: skip
    first = owner_api.get(f"{BASE}/support/items/?limit=2").json()
    assert [r["id"] for r in first["results"]] == ids[:-3:-1]
    second = owner_api.get(first["next"]).json()
    third = owner_api.get(second["next"]).json()
    assert [r["id"] for r in second["results"] + third["results"]] == ids[2::-1] and third["next"] is None
    about = owner_api.get(f"{BASE}/support/items/?subject=ada").json()["results"]
    assert [r["id"] for r in about] == [ids[3], ids[1]]
    assert "embedding" not in first["results"][0]

    assert owner_api.get(f"{BASE}/support/items/?limit=500").json()["error"]["details"][0]["field"] == "limit"
    assert owner_api.get(f"{BASE}/nowhere/items/").status_code == 404
    assert outsider_api.get(f"{BASE}/support/items/").status_code == 404  # another tenant's namespace
    assert outsider_api.get(f"{BASE}/support/items/{ids[0]}/").status_code == 404
    assert owner_api.get(f"{BASE}/support/items/{ids[0]}/").json()["content"] == "fact 0"


def test_a_pin_is_set_and_cleared_audited_and_refused_to_readers(trio, owner_api, outsider_api, api):
    from studio.governance.models import AuditEntry

    item = add(owner_api, "support", content="keep this one")
    url = f"{BASE}/support/items/{item.json()['id']}/"
    response = owner_api.patch(url, {"pinned": True}, format="json")
    assert response.status_code == 200 and response.json()["pinned"] is True
    assert MemoryItem.objects.get(pk=item.json()["id"]).pinned
    assert owner_api.patch(url, {"pinned": False}, format="json").json()["pinned"] is False
    actions = list(AuditEntry.objects.filter(tenant=trio.tenant, action__startswith="memory.item")
                   .order_by("seq").values_list("action", flat=True))  # fmt: skip
    assert actions == ["memory.item.pinned", "memory.item.unpinned"]

    bad = owner_api.patch(url, {"pinned": "maybe"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["field"] == "pinned"
    assert owner_api.patch(url, {}, format="json").status_code == 400
    assert api(trio.tenant, Role.REVIEWER).patch(url, {"pinned": True}, format="json").status_code == 403
    assert api(trio.tenant, Role.REVIEWER).get(url).status_code == 200
    assert outsider_api.patch(url, {"pinned": True}, format="json").status_code == 404
    assert not MemoryItem.objects.get(pk=item.json()["id"]).pinned


def test_search_arguments_are_refused_naming_the_field(owner_api):
    add(owner_api, "support", content="something to search")
    url = f"{BASE}/support/search/"
    cases = [
        ({"query": 42}, "query", "must be a string"),
        ({"query": "x", "k": 0}, "k", "between 1 and 100"),
        ({"query": "x", "k": True}, "k", "between 1 and 100"),
        ({"query": "x", "k": "10"}, "k", "between 1 and 100"),
        ({"query": "x", "min_score": 2}, "min_score", "between -1 and 1"),
        ({"query": "x", "filter": ["a"]}, "filter", "must be an object"),
        ({"vector": ["0.1"] * 384}, "vector", "numbers only"),
        ({"vector": [0.0] * 384}, "vector", "all zeros"),
        ({"vector": []}, "vector", "a list of 1 to 16,000 numbers"),
    ]
    for body, field, message in cases:
        response = owner_api.post(url, body, format="json")
        assert response.status_code == 400, body
        detail = response.json()["error"]["details"][0]
        assert detail["field"] == field and message in detail["message"], (body, detail)
    response = owner_api.post(url, [1, 2], format="json")
    assert response.status_code == 400 and "JSON object" in response.json()["error"]["message"]
    whole_numbers = owner_api.post(url, {"vector": [1] * 384, "k": 1}, format="json")
    assert whole_numbers.status_code == 200


def test_metadata_numbers_come_back_unchanged_even_beyond_64_bits(owner_api):
    # orjson, which parses these bodies, reads such an integer as a float; DRF's parser takes those.
    metadata = {"big": 2**70, "negative": -(2**65), "small": 7, "ratio": 0.1}
    body = json.dumps({"content": "a fact with numbers", "metadata": metadata})
    added = owner_api.post(f"{BASE}/numbers/items/", body, content_type="application/json")
    assert added.status_code == 201, added.content
    item = added.json()
    stored = owner_api.get(f"{BASE}/numbers/items/{item['id']}/")
    assert stored.status_code == 200
    assert json.loads(stored.content)["metadata"] == metadata
