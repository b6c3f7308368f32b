from __future__ import annotations

from flows.nodes.base import NodeResult, NodeType


def check(config: dict) -> list[str]:
    if config.get("kind") != "schedule":
        return []
    if not config.get("cron"):
        return ["a schedule trigger needs a cron expression, e.g. '0 9 * * 1-5'"]
    from flows.schedules import cron_problem

    problem = cron_problem(config["cron"])
    return [problem] if problem else []


NODE = NodeType(
    type="trigger",
    title="Trigger",
    category="Triggers",
    help="Where a run starts: by hand, through the API, a webhook or a schedule. Its input schema "
    "checks the run's inputs; its output is those inputs.",
    config_schema={
        "properties": {
            "kind": {"type": "string", "enum": ["manual", "api", "webhook", "schedule"], "default": "manual"},
            "input_schema": {
                "type": "object",
                "title": "Input schema",
                "description": "JSON Schema of the run's inputs.",
                "default": {"type": "object", "properties": {}},
            },
            "cron": {"type": "string", "title": "Schedule (cron)", "description": "For kind 'schedule'."},
            "run_timeout_s": {"type": "number", "minimum": 1, "title": "Run time limit (s)"},
        },
        "additionalProperties": False,
    },
    inputs=(),
    can_fail=False,
    inline=True,
    common=False,
    icon="▶",
    color="#16a34a",
    execute=lambda ctx: NodeResult(output=ctx.run.inputs),
    check=check,
)
