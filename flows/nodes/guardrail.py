from __future__ import annotations

import json
from typing import Any

import jsonschema

from flows.nodes.base import NodeContext, NodeResult, NodeType
from studio.governance.redaction import BUILTIN_RULES, find_pii

_MISSING = object()


def _lookup(value: Any, path: str) -> Any:
    """``a.b.0.c`` inside nested dicts and lists; _MISSING when absent."""
    for part in path.split(".") if path else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def violations_of(value: Any, config: dict) -> list[dict]:
    """Every rule the value breaks, each naming the rule and the path."""
    found: list[dict] = []
    if config.get("json_schema"):
        validator = jsonschema.Draft202012Validator(config["json_schema"])
        for error in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            path = ".".join(str(p) for p in error.absolute_path)
            found.append({"rule": "schema", "path": path, "message": error.message})
    for path in config.get("required", []):
        if _lookup(value, path) in (_MISSING, None, ""):
            found.append({"rule": "required", "path": path, "message": f"{path} is required"})
    for bound in config.get("bounds", []):
        item = _lookup(value, bound["path"])
        if item is _MISSING:
            found.append({"rule": "bounds", "path": bound["path"], "message": f"{bound['path']} is missing"})
            continue
        if not isinstance(item, int | float) or isinstance(item, bool):
            found.append(
                {"rule": "bounds", "path": bound["path"], "message": f"{bound['path']} is not a number"}
            )
            continue
        if "min" in bound and item < bound["min"]:
            found.append(
                {
                    "rule": "bounds",
                    "path": bound["path"],
                    "message": f"{bound['path']} = {item} is below {bound['min']}",
                }
            )
        if "max" in bound and item > bound["max"]:
            found.append(
                {
                    "rule": "bounds",
                    "path": bound["path"],
                    "message": f"{bound['path']} = {item} is above {bound['max']}",
                }
            )
    if config.get("pii"):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        for match in find_pii(text, config["pii"]):
            found.append({"rule": "pii", "path": "", "message": f"contains {match['rule']} data"})
    return found


def execute(ctx: NodeContext) -> NodeResult:
    value = ctx.render(ctx.config["value"]) if "value" in ctx.config else ctx.upstream_output
    violations = violations_of(value, ctx.config)
    passed = not violations
    return NodeResult(
        output={"passed": passed, "violations": violations, "value": value},
        handles=["pass" if passed else "blocked"],
    )


NODE = NodeType(
    uses_upstream=True,
    type="guardrail",
    title="Guardrail",
    category="Governance",
    help="Checks a value (the upstream output unless given) against a JSON Schema, required fields, "
    "numeric bounds and personal-data patterns, and takes 'pass' or 'blocked'.",
    config_schema={
        "properties": {
            "value": {"type": "string", "format": "template", "title": "Value to check"},
            "json_schema": {"type": "object", "title": "JSON Schema"},
            "required": {"type": "array", "items": {"type": "string"}, "title": "Required fields (paths)"},
            "bounds": {
                "type": "array",
                "title": "Numeric bounds",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "min": {"type": "number"},
                        "max": {"type": "number"},
                    },
                    "required": ["path"],
                    "additionalProperties": False,
                },
            },
            "pii": {
                "type": "array",
                "items": {"type": "string", "enum": list(BUILTIN_RULES)},
                "title": "Block PII",
            },
        },
        "additionalProperties": False,
    },
    outputs=("pass", "blocked"),
    inline=True,
    icon="⊘",
    color="#dc2626",
    execute=execute,
)
