"""The ``approval`` node type: parks the step until a human decides (registered by InboxConfig).

It renders what the reviewer sees, then asks the engine to wait; the engine calls ``on_wait``
inside the transaction that parks the step, which creates the ReviewTask, so a review exists
exactly when its step waits. A decision (``services.review_decide``) or the SLA job
(``services.reviews_expire_due``) later completes the step through ``engine.step_resume``.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from flows.nodes import NodeContext, NodeError, NodeResult, NodeType
from studio.tenants.roles import Role

ROLES = [role.value for role in Role]


def execute(ctx: NodeContext) -> NodeResult:
    config = ctx.config
    instructions = ctx.render(config.get("instructions", "")) if config.get("instructions") else ""
    proposal = ctx.render(config["data"]) if "data" in config else ctx.upstream_output
    schema = config.get("editable_fields")
    if schema:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise NodeError(f"editable_fields is not a valid JSON Schema: {exc.message}") from None
    reviewers = config.get("reviewers") or {}
    spec: dict[str, Any] = {
        "title": (config.get("label") or ctx.node["id"])[:200],
        "instructions": instructions if isinstance(instructions, str) else str(instructions),
        "proposal": proposal,
        "editable_schema": schema or None,
        "assigned_role": reviewers.get("role", "") if not reviewers.get("users") else "",
        "assigned_users": list(reviewers.get("users") or []),
        "quorum": int(config.get("quorum", 1)),
        "sla_s": config.get("sla_s"),
        "on_timeout": config.get("on_timeout", "timed_out"),
        "escalate_to": config.get("escalate_to", ""),
        "escalate_sla_s": config.get("escalate_sla_s"),
    }
    ctx.recorded_inputs["instructions"] = spec["instructions"]
    ctx.recorded_inputs["proposal"] = proposal

    def on_wait(run, step) -> None:
        from studio.inbox.services import review_create

        review_create(run=run, step=step, **spec)

    return NodeResult(wait=True, state={"review": True}, on_wait=on_wait)


NODE = NodeType(
    type="approval",
    title="Human approval",
    category="Humans",
    help="Parks the run until a reviewer approves, rejects or edits the proposal in the inbox. The output "
    "is the approved (or edited) data; a rejection outputs {rejected, comment, proposal}. On SLA expiry it "
    "escalates to a role with a new SLA, or takes 'timed_out' (never an automatic approval).",
    config_schema={
        "properties": {
            "label": {"type": "string", "maxLength": 120, "title": "Label"},
            "instructions": {
                "type": "string",
                "format": "template",
                "x-multiline": True,
                "title": "Instructions",
                "maxLength": 20_000,
            },
            "data": {
                "type": ["string", "object"],
                "format": "template",
                "title": "Shown data",
                "description": "What the reviewer sees and approves: a template, or a mapping of templates. "
                "Default: the upstream step's output.",
                "additionalProperties": {"format": "template"},
            },
            "editable_fields": {
                "type": "object",
                "title": "Editable fields (JSON Schema)",
                "description": "The fields a reviewer may change before approving, as a JSON Schema.",
            },
            "reviewers": {
                "type": "object",
                "title": "Reviewers",
                "properties": {
                    "role": {"type": "string", "enum": ROLES, "default": "reviewer"},
                    "users": {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 100},
                },
                "additionalProperties": False,
            },
            "quorum": {
                "type": "integer",
                "minimum": 1,
                "maximum": 20,
                "default": 1,
                "title": "Approvals needed",
            },
            "sla_s": {"type": "integer", "minimum": 1, "maximum": 90 * 86400, "title": "SLA (s)"},
            "on_timeout": {
                "type": "string",
                "enum": ["timed_out", "escalate"],
                "default": "timed_out",
                "title": "On SLA expiry",
            },
            "escalate_to": {"type": "string", "enum": ROLES, "title": "Escalate to role"},
            "escalate_sla_s": {
                "type": "integer",
                "minimum": 1,
                "maximum": 90 * 86400,
                "title": "SLA after escalation (s)",
            },
        },
        "additionalProperties": False,
    },
    outputs=("approved", "rejected", "timed_out"),
    common=False,  # no timeout, retries or fallback: a human answers, hours or days later
    check=lambda config: (
        ["on_timeout 'escalate' needs escalate_to (a role)"]
        if config.get("on_timeout") == "escalate" and not config.get("escalate_to")
        else []
    ),
    icon="✓",
    color="#d97706",
    default_timeout_s=30.0,
    execute=execute,
)
