from __future__ import annotations

from flows.nodes._children import FLOW_REF_SCHEMA
from flows.nodes.base import NodeContext, NodeResult, NodeType


def execute(ctx: NodeContext) -> NodeResult:
    from flows.engine import children_start

    inputs = ctx.render(ctx.config.get("inputs", {}))
    ctx.recorded_inputs["inputs"] = inputs
    return children_start(ctx, flow_ref=ctx.config["flow"], inputs=[inputs], concurrency=1)


NODE = NodeType(
    type="subflow",
    title="Sub-flow",
    category="Flows",
    help="Runs a pinned version of another flow as one child run and outputs its result.",
    config_schema={
        "properties": {
            "flow": FLOW_REF_SCHEMA,
            "inputs": {"type": "object", "additionalProperties": {"format": "template"}, "title": "Inputs"},
        },
        "required": ["flow"],
        "additionalProperties": False,
    },
    icon="⊡",
    color="#0d9488",
    default_timeout_s=3600.0,
    execute=execute,
)
