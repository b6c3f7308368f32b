from __future__ import annotations

from flows.nodes.base import NodeContext, NodeError, NodeResult, NodeType


def execute(ctx: NodeContext) -> NodeResult:
    if "mapping" in ctx.config:
        return NodeResult(output=ctx.render(ctx.config["mapping"]))
    if "template" in ctx.config:
        return NodeResult(output=ctx.render_text(ctx.config["template"]))
    raise NodeError("a transform needs a template or a mapping")


NODE = NodeType(
    type="transform",
    title="Transform",
    category="Data",
    help="Reshapes data: a template gives text; a mapping gives an object whose values are templates "
    "(a value that is exactly one {{ expression }} keeps its type).",
    config_schema={
        "properties": {
            "template": {"type": "string", "format": "template", "x-multiline": True},
            "mapping": {"type": "object", "additionalProperties": {"format": "template"}},
        },
        "oneOf": [{"required": ["template"]}, {"required": ["mapping"]}],
        "additionalProperties": False,
    },
    inline=True,
    icon="⇄",
    color="#7c3aed",
    execute=execute,
)
