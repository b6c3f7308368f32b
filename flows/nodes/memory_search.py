"""Memory search: the k nearest items of a tenant namespace to a query template."""

from __future__ import annotations

from typing import Any

from flows.nodes.base import QUEUE_IO, NodeContext, NodeError, NodeResult, NodeType
from studio.memory import services as memory

NAMESPACE = {"type": "string", "pattern": memory.NAMESPACE_RE.pattern, "title": "Namespace"}


def search(ctx: NodeContext, *, namespace: str, query: Any, k: int, min_score: float | None = None,
           filter: dict | None = None) -> dict:  # fmt: skip
    """Search the run's tenant memory (never another tenant's: the tenant is the run's)."""
    if not isinstance(query, str):
        query = "" if query is None else str(query)
    try:
        hits = memory.memory_search(tenant=ctx.tenant, namespace=namespace, query=query, k=k,
                                    min_score=min_score, filter=filter or None)  # fmt: skip
    except memory.MemoryValidationError as exc:
        raise NodeError(f"memory search: {exc}") from None
    except memory.EmbedderUnavailable as exc:
        raise NodeError(f"memory search: {exc}", retryable=True) from None
    results = [hit.as_dict() for hit in hits]
    return {"results": results, "count": len(results), "namespace": namespace}


def execute(ctx: NodeContext) -> NodeResult:
    config = ctx.config
    query = ctx.render_text(config["query"])
    ctx.recorded_inputs["query"] = query
    output = search(ctx, namespace=config["namespace"], query=query, k=config.get("k", 5),
                    min_score=config.get("min_score"), filter=ctx.render(config.get("filter") or {}))  # fmt: skip
    top = output["results"][0]["score"] if output["results"] else None
    return NodeResult(output=output, confidence=top)


def tool_call(ctx: NodeContext, tool: dict, arguments: dict) -> dict:
    """An agent's memory tool: the model passes ``{"query": …}``; namespace and k are the tool's."""
    spec = tool["memory"]
    return search(ctx, namespace=spec["namespace"], query=arguments.get("query"), k=spec.get("k", 5),
                  min_score=spec.get("min_score"))  # fmt: skip


TOOL_INPUT_SCHEMA = {
    "type": "object",
    "properties": {"query": {"type": "string", "description": "What to look up in memory"}},
    "required": ["query"],
}

NODE = NodeType(
    type="memory_search",
    title="Memory search",
    category="Memory",
    help="Finds the items of a tenant memory namespace most similar to the query: results with their "
    "score (cosine similarity), metadata and subject. Only this tenant's memory is searched.",
    config_schema={
        "properties": {
            "namespace": NAMESPACE,
            "query": {
                "type": "string",
                "format": "template",
                "x-multiline": True,
                "minLength": 1,
                "title": "Query",
            },
            "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5, "title": "Results (k)"},
            "min_score": {"type": "number", "minimum": -1, "maximum": 1, "title": "Minimum score"},
            "filter": {
                "type": "object",
                "additionalProperties": {"format": "template"},
                "title": "Metadata filter",
                "description": "Items whose metadata contains these values",
            },
        },
        "required": ["namespace", "query"],
        "additionalProperties": False,
    },
    queue=QUEUE_IO,
    audit_action="memory.search",
    icon="⌕",
    color="#0d9488",
    execute=execute,
)
