"""An LLM in a loop with tools: each tool call is checked, made and recorded."""

from __future__ import annotations

import json

from flows.nodes import memory_search
from flows.nodes._http import HTTP_PROPERTIES, call_http, http_capability
from flows.nodes._model import MODEL_PROPERTIES, MODEL_RULES, call_model, model_request
from flows.nodes.base import QUEUE_IO, CapabilityRefused, NodeContext, NodeError, NodeResult, NodeType
from flows.providers import ToolSpec

TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"},
        "description": {"type": "string"},
        "input_schema": {"type": "object"},
        "http": {
            "type": "object",
            "properties": HTTP_PROPERTIES,
            "required": ["url"],
            "additionalProperties": False,
            "description": "The call the tool makes; templates see the model's arguments as {{ args.x }}.",
        },
        "memory": {
            "type": "object",
            "properties": {
                "namespace": {"type": "string", "pattern": memory_search.NAMESPACE["pattern"]},
                "k": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
                "min_score": {"type": "number", "minimum": -1, "maximum": 1},
            },
            "required": ["namespace"],
            "additionalProperties": False,
            "description": "Instead of http: the tool searches this memory namespace of the run's tenant "
            'for the model\'s {"query"}.',
        },
    },
    "required": ["name", "description"],
    "oneOf": [{"required": ["http"]}, {"required": ["memory"]}],
    "additionalProperties": False,
}


def _run_tool(ctx: NodeContext, tool: dict, arguments: dict, index: int) -> dict:
    if "memory" in tool:
        return memory_search.tool_call(ctx, tool, arguments)
    with ctx.extra_variables(args=arguments):
        return call_http(ctx, tool["http"], connector=f"tool:{tool['name']}", key_suffix=f":tool{index}")


def _default_input_schema(tool: dict) -> dict:
    return memory_search.TOOL_INPUT_SCHEMA if "memory" in tool else {"type": "object", "properties": {}}


def execute(ctx: NodeContext) -> NodeResult:
    tools = {tool["name"]: tool for tool in ctx.config.get("tools", [])}
    specs = [
        ToolSpec(t["name"], t["description"], t.get("input_schema") or _default_input_schema(t))
        for t in tools.values()
    ]
    prompt = ctx.render_text(ctx.config["prompt"])
    ctx.recorded_inputs["prompt"] = prompt
    messages: list[dict] = [{"role": "user", "content": prompt}]
    calls: list[dict] = []
    tokens_in = tokens_out = 0
    cost = 0
    model = ""
    for turn in range(ctx.config.get("max_iterations", 5)):
        response = call_model(ctx, model_request(ctx, messages=messages, turn=turn, tools=specs))
        tokens_in += response.tokens_in
        tokens_out += response.tokens_out
        cost += response.cost_usd
        model = response.model
        if not response.tool_calls:
            return NodeResult(
                output={"text": response.text, "tool_calls": calls, "iterations": turn + 1},
                tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=cost, model=model,
                confidence=response.confidence,
            )  # fmt: skip
        messages.append({"role": "assistant", "content": response.assistant_content})
        results = []
        for call in response.tool_calls:
            record = {"name": call.name, "input": call.input}
            tool = tools.get(call.name)
            if tool is None:
                record["error"] = f"unknown tool {call.name!r}"
            else:
                try:
                    record["output"] = _run_tool(ctx, tool, call.input, len(calls))
                except CapabilityRefused:
                    raise  # stops the agent: not the model's to work around
                except NodeError as exc:
                    record["error"] = exc.message
            calls.append(record)
            content = json.dumps(record.get("output", {"error": record.get("error")}), default=str)[:20000]
            results.append({"type": "tool_result", "tool_use_id": call.id, "content": content})
        messages.append({"role": "user", "content": results})
    raise NodeError(
        f"the agent did not finish within {ctx.config.get('max_iterations', 5)} iterations",
        details={"tool_calls": calls},
    )


NODE = NodeType(
    type="agent",
    title="Agent",
    category="AI",
    help="A model that may call the tools listed here, in a loop bounded by max iterations. Every "
    "tool call is checked against the flow's capabilities and recorded in the step's output.",
    config_schema={
        "properties": {
            **MODEL_PROPERTIES,
            "prompt": {"type": "string", "format": "template", "x-multiline": True, "minLength": 1},
            "tools": {"type": "array", "items": TOOL_SCHEMA, "title": "Tools"},
            "max_iterations": {"type": "integer", "minimum": 1, "maximum": 50, "default": 5},
        },
        "required": ["prompt"],
        "allOf": MODEL_RULES,
        "additionalProperties": False,
    },
    queue=QUEUE_IO,
    audit_action="model.call",
    capabilities=lambda config: {
        http_capability(t["http"].get("url", "")) for t in config.get("tools", []) if "http" in t
    },
    icon="✧",
    color="#6d28d9",
    default_timeout_s=120.0,
    execute=execute,
)
