from __future__ import annotations

from flows.nodes._http import HTTP_PROPERTIES, call_http, http_capability
from flows.nodes.base import QUEUE_IO, NodeContext, NodeResult, NodeType


def execute(ctx: NodeContext) -> NodeResult:
    if ctx.config.get("capability"):
        ctx.require(ctx.config["capability"])
    return NodeResult(output=call_http(ctx, ctx.config, connector=f"http:{ctx.node['id']}"))


NODE = NodeType(
    type="http",
    title="HTTP request",
    category="Tools",
    help="Calls an HTTP API. The host must be granted to the flow (capability http:<host>); private "
    "addresses are refused unless the tenant allows them; the step's idempotency key is sent as "
    "the Idempotency-Key header.",
    config_schema={
        "properties": {**HTTP_PROPERTIES, "capability": {"type": "string", "title": "Extra capability"}},
        "required": ["url"],
        "additionalProperties": False,
    },
    queue=QUEUE_IO,
    audit_action="tool.call",
    capabilities=lambda config: (
        {http_capability(config.get("url", ""))}
        | ({config["capability"]} if config.get("capability") else set())
    ),
    icon="⇅",
    color="#ea580c",
    default_timeout_s=30.0,
    execute=execute,
)
