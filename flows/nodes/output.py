from __future__ import annotations

from flows.nodes.base import NodeContext, NodeResult, NodeType


def execute(ctx: NodeContext) -> NodeResult:
    mapping = ctx.config.get("mapping")
    output = ctx.render(mapping) if mapping else ctx.upstream_output
    return NodeResult(output=output, handles=[])


NODE = NodeType(
    uses_upstream=True,
    type="output",
    title="Output",
    category="Output",
    help="The run's result. A mapping names each output (values are templates); without one the "
    "upstream node's output is the result.",
    config_schema={
        "properties": {"mapping": {"type": "object", "additionalProperties": {"format": "template"}}},
        "additionalProperties": False,
    },
    outputs=(),
    can_fail=False,
    inline=True,
    icon="■",
    color="#334155",
    execute=execute,
)
