from __future__ import annotations

from flows.nodes._model import MODEL_PROPERTIES, MODEL_RULES, call_model, model_request
from flows.nodes.base import QUEUE_IO, NodeContext, NodeError, NodeResult, NodeType
from flows.templating import TemplateError, evaluate


def class_ids(config: dict) -> list[str]:
    return [c["id"] for c in config.get("classes", []) if isinstance(c, dict) and "id" in c]


def _by_rules(ctx: NodeContext) -> NodeResult:
    for rule in ctx.config.get("rules", []):
        try:
            if evaluate(rule["when"], ctx.variables):
                return NodeResult(output={"class": rule["class"], "by": "rule"}, handles=[rule["class"]])
        except TemplateError as exc:
            raise NodeError(f"rule for {rule['class']!r}: {exc}") from None
    default = ctx.config.get("default_class")
    if default is None:
        raise NodeError("no rule matched and there is no default class")
    return NodeResult(output={"class": default, "by": "default"}, handles=[default])


def _by_model(ctx: NodeContext) -> NodeResult:
    classes = ctx.config["classes"]
    text = ctx.render_text(ctx.config.get("input", "")) or str(ctx.upstream_output)
    listing = "\n".join(f"- {c['id']}: {c.get('description', '')}" for c in classes)
    prompt = f"Classify the input into exactly one class.\n\nClasses:\n{listing}\n\nInput:\n{text}"
    ctx.recorded_inputs["prompt"] = prompt
    schema = {
        "type": "object",
        "properties": {"class": {"enum": class_ids(ctx.config)}, "confidence": {"type": "number"}},
        "required": ["class"],
    }
    response = call_model(
        ctx, model_request(ctx, messages=[{"role": "user", "content": prompt}], output_schema=schema)
    )
    chosen = response.json["class"]
    confidence = response.json.get("confidence", response.confidence)
    return NodeResult(
        output={"class": chosen, "by": "model", "confidence": confidence},
        handles=[chosen],
        tokens_in=response.tokens_in,
        tokens_out=response.tokens_out,
        cost_usd=response.cost_usd,
        model=response.model,
        confidence=confidence,
    )


def execute(ctx: NodeContext) -> NodeResult:
    return _by_rules(ctx) if ctx.config.get("mode", "model") == "rules" else _by_model(ctx)


NODE = NodeType(
    uses_upstream=True,
    type="router",
    title="Router",
    category="Logic",
    help="Sends the run down one of several paths, one output per class: chosen by a model from the "
    "class descriptions, or by rules (sandboxed expressions, first match wins).",
    config_schema={
        "properties": {
            **MODEL_PROPERTIES,
            "mode": {"type": "string", "enum": ["model", "rules"], "default": "model"},
            "input": {
                "type": "string",
                "format": "template",
                "x-multiline": True,
                "title": "Text to classify",
            },
            "classes": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "pattern": "^[a-z][a-z0-9_]{0,62}$"},
                        "description": {"type": "string"},
                    },
                    "required": ["id"],
                    "additionalProperties": False,
                },
            },
            "rules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "class": {"type": "string"},
                        "when": {"type": "string", "format": "expression"},
                    },
                    "required": ["class", "when"],
                    "additionalProperties": False,
                },
            },
            "default_class": {"type": "string"},
        },
        "required": ["classes"],
        "allOf": MODEL_RULES,
        "additionalProperties": False,
    },
    outputs=(),
    dynamic_outputs=class_ids,
    queue=QUEUE_IO,
    audit_action=lambda config: "model.call" if config.get("mode", "model") == "model" else None,
    icon="⇉",
    color="#0891b2",
    execute=execute,
)
