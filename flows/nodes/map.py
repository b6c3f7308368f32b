from __future__ import annotations

from flows.nodes._children import FLOW_REF_SCHEMA
from flows.nodes.base import NodeContext, NodeError, NodeResult, NodeType
from flows.templating import TemplateError, evaluate

MAX_ITEMS = 10_000


def execute(ctx: NodeContext) -> NodeResult:
    from flows.engine import children_start

    try:
        items = evaluate(ctx.config["items"], ctx.variables)
    except TemplateError as exc:
        raise NodeError(f"items: {exc}") from None
    if not isinstance(items, list | tuple):
        raise NodeError(f"items must be a list, got {type(items).__name__}")
    if len(items) > MAX_ITEMS:
        raise NodeError(f"{len(items):,} items; a map takes at most {MAX_ITEMS:,}")
    inputs = []
    for index, item in enumerate(items):
        if "item_input" in ctx.config:
            with ctx.extra_variables(item=item, index=index):
                inputs.append(ctx.render(ctx.config["item_input"]))
        else:
            inputs.append(item if isinstance(item, dict) else {"item": item})
    ctx.recorded_inputs["items"] = len(inputs)
    return children_start(
        ctx, flow_ref=ctx.config["flow"], inputs=inputs, concurrency=ctx.config.get("concurrency", 4)
    )


NODE = NodeType(
    type="map",
    title="Map",
    category="Flows",
    help="Runs a pinned version of another flow once per item of a list, as child runs in parallel on "
    "the workers (at most 'concurrency' at a time), and outputs their results in item order.",
    config_schema={
        "properties": {
            "items": {
                "type": "string",
                "format": "expression",
                "minLength": 1,
                "title": "Items (expression)",
            },
            "flow": FLOW_REF_SCHEMA,
            "concurrency": {"type": "integer", "minimum": 1, "maximum": 200, "default": 4},
            "item_input": {
                "type": "object",
                "title": "Child inputs",
                "description": "Templates that see {{ item }} and {{ index }}; default: the item itself.",
                "additionalProperties": {"format": "template"},
            },
            "continue_on_error": {
                "type": "boolean",
                "default": False,
                "title": "Keep going when an item fails",
            },
        },
        "required": ["items", "flow"],
        "additionalProperties": False,
    },
    icon="⊞",
    color="#0d9488",
    default_timeout_s=3600.0,
    execute=execute,
)
