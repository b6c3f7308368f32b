"""Memory write: one item into a tenant namespace, redacted by the namespace's rules first."""

from __future__ import annotations

from flows.nodes.base import QUEUE_IO, NodeContext, NodeError, NodeResult, NodeType
from flows.nodes.memory_search import NAMESPACE
from studio.memory import services as memory


def execute(ctx: NodeContext) -> NodeResult:
    config = ctx.config
    content = ctx.render_text(config["content"])
    subject = ctx.render_text(config.get("subject", ""))
    metadata = ctx.render(config.get("metadata") or {})
    if not isinstance(metadata, dict):
        raise NodeError("memory write: metadata must render to an object")
    try:
        # The step's idempotency key as the item's dedupe key: a step run again after a lost
        # worker gets the item it already wrote instead of writing it twice.
        item = memory.memory_add_one(
            tenant=ctx.tenant, namespace=config["namespace"], content=content, subject=subject,
            metadata={**metadata, "run": ctx.run.pk, "node": ctx.node["id"]},
            source=f"run:{ctx.run.pk}/step:{ctx.node['id']}", dedupe_key=ctx.idempotency_key,
            ttl_seconds=config.get("ttl_s"), pinned=bool(config.get("pinned", False)),
        )  # fmt: skip
    except memory.MemoryValidationError as exc:
        raise NodeError(f"memory write: {exc}") from None
    except memory.EmbedderUnavailable as exc:
        raise NodeError(f"memory write: {exc}", retryable=True) from None
    return NodeResult(output={
        "id": item.pk, "namespace": config["namespace"], "content": item.content,
        "subject": item.subject,
        "expires_at": item.expires_at.isoformat() if item.expires_at else None,
    })  # fmt: skip


NODE = NodeType(
    type="memory_write",
    title="Memory write",
    category="Memory",
    help="Stores one item in a tenant memory namespace (redacted by the namespace's rules before it is "
    "stored), with metadata, the subject it is about and an optional time to live.",
    config_schema={
        "properties": {
            "namespace": NAMESPACE,
            "content": {
                "type": "string",
                "format": "template",
                "x-multiline": True,
                "minLength": 1,
                "title": "Content",
            },
            "subject": {
                "type": "string",
                "format": "template",
                "title": "Subject",
                "description": "The person or customer it is about (for 'forget this subject')",
            },
            "metadata": {
                "type": "object",
                "additionalProperties": {"format": "template"},
                "title": "Metadata",
            },
            "ttl_s": {
                "type": "integer",
                "minimum": 1,
                "title": "Time to live (s)",
                "description": "Overrides the namespace's policy for this item",
            },
            "pinned": {
                "type": "boolean",
                "default": False,
                "title": "Pinned",
                "description": "Never evicted by the maximum-items policy",
            },
        },
        "required": ["namespace", "content"],
        "additionalProperties": False,
    },
    queue=QUEUE_IO,
    audit_action="memory.write",
    icon="⊕",
    color="#0d9488",
    execute=execute,
)
