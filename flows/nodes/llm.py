from __future__ import annotations

from flows.nodes._model import MODEL_PROPERTIES, MODEL_RULES, call_model, model_request
from flows.nodes.base import QUEUE_IO, NodeContext, NodeResult, NodeType


def execute(ctx: NodeContext) -> NodeResult:
    prompt = ctx.render_text(ctx.config["prompt"])
    ctx.recorded_inputs["prompt"] = prompt
    request = model_request(
        ctx, messages=[{"role": "user", "content": prompt}], output_schema=ctx.config.get("output_schema")
    )
    response = call_model(ctx, request)
    output = {"text": response.text}
    if request.output_schema is not None:
        output["json"] = response.json
    return NodeResult(
        output=output,
        tokens_in=response.tokens_in,
        tokens_out=response.tokens_out,
        cost_usd=response.cost_usd,
        model=response.model,
        confidence=response.confidence,
    )


NODE = NodeType(
    type="llm",
    title="LLM",
    category="AI",
    help="One model call: a prompt template in, text out — or JSON checked against an output schema.",
    config_schema={
        "properties": {
            **MODEL_PROPERTIES,
            "prompt": {
                "type": "string",
                "format": "template",
                "x-multiline": True,
                "minLength": 1,
                "title": "Prompt",
            },
            "output_schema": {"type": "object", "title": "Output JSON Schema"},
        },
        "required": ["prompt"],
        "allOf": MODEL_RULES,
        "additionalProperties": False,
    },
    queue=QUEUE_IO,
    audit_action="model.call",
    icon="✦",
    color="#4f46e5",
    execute=execute,
)
