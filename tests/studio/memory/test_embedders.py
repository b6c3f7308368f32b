"""Embedders: hashing (deterministic, unit length), HTTP providers in both request shapes with
the key from the tenant's secrets (the provider is the outside world: httpx.MockTransport), and
the local MiniLM model giving sensible neighbours (when the 'embeddings' extra is installed)."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from studio.memory import embedders, services
from studio.tenants.services import secret_set
from tests.factories import make_tenant

pytestmark = pytest.mark.django_db


def test_the_hashing_embedder_is_deterministic_and_unit_length():
    embedder = embedders.HashingEmbedder()
    [a, b] = embedder.embed(["Refund policy for orders", "refund POLICY for orders!"])
    assert a == b and len(a) == 384
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-9)
    [c] = embedder.embed(["!!!"])  # no words: still a usable vector
    assert any(c)


class Provider:
    """A fake embedding API that records requests and answers in the OpenAI/Voyage shape."""

    def __init__(self, dims: int) -> None:
        self.dims = dims
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        texts = json.loads(request.content)["input"]
        data = [{"index": i, "embedding": [float(len(t) + i + 1)] + [1.0] * (self.dims - 1)}
                for i, t in enumerate(texts)]  # fmt: skip
        return httpx.Response(200, json={"data": list(reversed(data))})  # out of order on purpose


@pytest.fixture
def provider(monkeypatch):
    fake = Provider(dims=8)
    monkeypatch.setattr(embedders, "http_transport", httpx.MockTransport(fake))
    return fake


@pytest.mark.parametrize("shape", ["openai", "voyage"])
def test_an_http_embedder_sends_the_provider_shape_with_the_tenant_key(provider, shape):
    tenant = make_tenant()
    secret_set(tenant=tenant, name="embed_key", value="sk-test-123")
    tenant.settings = {"memory": {"embedder": {"kind": "http", "shape": shape, "model": "emb-1", "dims": 8,
                                               "secret": "embed_key"}}}  # fmt: skip
    tenant.save()
    item = services.memory_add_one(tenant=tenant, namespace="docs", content="hello world")
    hits = services.memory_search(tenant=tenant, namespace="docs", query="hello")
    assert [h.id for h in hits] == [item.id] and item.dims == 8

    write, query = (json.loads(r.content) for r in provider.requests)
    request = provider.requests[0]
    assert request.headers["authorization"] == "Bearer sk-test-123"
    assert write["model"] == "emb-1" and write["input"] == ["hello world"]
    if shape == "voyage":
        assert str(request.url) == "https://api.voyageai.com/v1/embeddings"
        assert (write["input_type"], query["input_type"]) == ("document", "query")
    else:
        assert str(request.url) == "https://api.openai.com/v1/embeddings"
        assert "input_type" not in write


def test_an_http_embedder_answering_another_dimension_is_a_clear_error(provider):
    provider.dims = 16
    tenant = make_tenant()
    tenant.settings = {"memory": {"embedder": {"kind": "http", "model": "m", "dims": 8,
                                               "url": "http://127.0.0.1:9/v1/embeddings"}}}  # fmt: skip
    tenant.save()
    with pytest.raises(services.EmbedderUnavailable, match="returned 16 dimensions; the spec says 8"):
        services.memory_add_one(tenant=tenant, namespace="docs", content="hello")


def test_a_missing_credential_is_named():
    tenant = make_tenant()
    tenant.settings = {"memory": {"embedder": {"kind": "http", "model": "m", "dims": 8, "secret": "nope"}}}
    tenant.save()
    with pytest.raises(services.EmbedderUnavailable, match="no credential named 'nope'"):
        services.memory_add_one(tenant=tenant, namespace="docs", content="hello")


@pytest.mark.skipif(not embedders.minilm_available(), reason="the 'embeddings' extra is not installed")
def test_minilm_finds_semantic_neighbours_the_hashing_embedder_cannot():
    tenant = make_tenant()
    tenant.settings = {"memory": {"embedder": "minilm"}}
    tenant.save()
    facts = {
        "refund": "Customers can get their money back within 30 days of purchase.",
        "shipping": "Parcels are delivered by courier in two to four working days.",
        "password": "To change your login credentials, open the account security page.",
        "weather": "It was sunny and warm at the beach all weekend.",
    }
    ids = {}
    for key, text in facts.items():
        ids[services.memory_add_one(tenant=tenant, namespace="kb", content=text).id] = key
    questions = {
        "How do I return an item and be reimbursed?": "refund",
        "When will my package arrive?": "shipping",
        "I forgot my password, how can I reset it?": "password",
    }
    for question, expected in questions.items():
        hits = services.memory_search(tenant=tenant, namespace="kb", query=question, k=2)
        assert ids[hits[0].id] == expected, (question, [ids[h.id] for h in hits])
        assert hits[0].score > hits[1].score
