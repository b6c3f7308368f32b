from __future__ import annotations

from flows.nodes.base import NodeContext, NodeError, NodeResult, NodeType
from flows.templating import TemplateError, evaluate


def execute(ctx: NodeContext) -> NodeResult:
    expression = ctx.config["expression"]
    try:
        value = bool(evaluate(expression, ctx.variables))
    except TemplateError as exc:
        raise NodeError(str(exc)) from None
    ctx.recorded_inputs["expression"] = expression
    return NodeResult(output={"result": value}, handles=["true" if value else "false"])


NODE = NodeType(
    type="condition",
    title="Condition",
    category="Logic",
    help="Takes the 'true' or the 'false' path by a sandboxed expression, e.g. "
    "nodes.score.output.json.risk > 0.8",
    config_schema={
        "properties": {"expression": {"type": "string", "format": "expression", "minLength": 1}},
        "required": ["expression"],
        "additionalProperties": False,
    },
    outputs=("true", "false"),
    inline=True,
    icon="◇",
    color="#0891b2",
    execute=execute,
)
