"""Approval policies: steps that must wait for a person before they act.

A policy names a capability (``billing.write``, ``pricing.*``, ``http:api.stripe.com``) and,
optionally, a condition (a sandboxed Jinja2 expression over what the step's templates see:
``input``, ``nodes``). A step whose node needs a matching capability, when the condition holds,
is parked before it executes: the engine opens a review (reason "policy", with the policy's
name) showing what the step is about to do, and nothing is sent until a reviewer approves. An
approval queues the step again and it runs exactly as it would have; a rejection or an expired
review fails the step (its error handle, if connected, takes over). Never an automatic approval.

Every financial change needs approval: ``FINANCIAL`` (``billing.*``) is built in and cannot be
switched off. Tenants add their own in Settings → Policies (``Tenant.settings["policies"]``),
for instance any price move beyond a bound:
``capability: pricing.publish, when: (nodes.propose.output.change_pct | abs) > 10``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError

from flows.nodes.base import NodeContext, NodeError, NodeResult, NodeType, capability_granted
from flows.templating import TemplateError, check_syntax, evaluate
from studio.tenants.roles import Role

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")
CAPABILITY_RE = re.compile(r"^[a-z][a-z0-9_.:*-]{0,99}$")
MAX_POLICIES = 50
MAX_SLA_S = 90 * 86400
# Who may decide: reviewers and up may decide reviews, owners and admins always may.
DECIDERS = (Role.REVIEWER, Role.ADMIN, Role.OWNER)


@dataclass(frozen=True)
class ApprovalPolicy:
    name: str
    capability: str  # the capability it guards; a trailing * matches a family ("pricing.*")
    when: str = ""  # a sandboxed expression; empty: always
    role: str = Role.ADMIN  # who is asked (owners and admins may always decide)
    sla_s: int | None = None  # undecided after this long: the step fails
    built_in: bool = False

    def covers(self, capabilities: set[str]) -> bool:
        return any(capability_granted(capability, {self.capability}) for capability in capabilities)

    def as_setting(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "built_in" and v not in ("", None)}


FINANCIAL = ApprovalPolicy(name="financial-changes", capability="billing.*", built_in=True)
BUILT_IN = (FINANCIAL,)


def tenant_policies(settings: dict | None) -> list[ApprovalPolicy]:
    """The built-in policies, then the tenant's own (as stored by ``parse_policy``)."""
    own = (settings or {}).get("policies") or []
    return [*BUILT_IN, *(ApprovalPolicy(**{k: v for k, v in p.items() if k != "built_in"}) for p in own)]


def parse_policy(*, name: str, capability: str, when: str = "", role: str = Role.ADMIN,
                 sla_s: str | int | None = None, existing: list[ApprovalPolicy] = ()) -> ApprovalPolicy:  # fmt: skip
    """A policy from a form or an API body, or a ValidationError naming the field."""
    name, capability, when = name.strip(), capability.strip(), when.strip()
    if not NAME_RE.match(name):
        raise ValidationError({"name": "lower-case letters, digits, '.', '_' or '-' (at most 60)"})
    if any(p.name == name for p in existing):
        raise ValidationError({"name": f"a policy named {name!r} exists already"})
    if not CAPABILITY_RE.match(capability):
        raise ValidationError(
            {"capability": f"{capability[:60]!r} is not a capability (e.g. pricing.publish)"}
        )
    if when and (problem := check_syntax(when, expression=True)):
        raise ValidationError({"when": f"not a valid expression: {problem}"})
    if role not in DECIDERS:
        raise ValidationError({"role": f"one of {', '.join(DECIDERS)}"})
    if sla_s in ("", None):
        sla = None
    else:
        try:
            sla = int(sla_s)
        except (TypeError, ValueError):
            raise ValidationError({"sla_s": "a whole number of seconds"}) from None
        if not 60 <= sla <= MAX_SLA_S:
            raise ValidationError({"sla_s": f"from 60 to {MAX_SLA_S:,} seconds"})
    if len(existing) >= MAX_POLICIES + len(BUILT_IN):
        raise ValidationError({"name": f"at most {MAX_POLICIES} policies"})
    return ApprovalPolicy(name=name, capability=capability, when=when, role=role, sla_s=sla)


def policy_for_step(ctx: NodeContext, node_type: NodeType) -> ApprovalPolicy | None:
    """The first policy that asks a person to approve this step before it acts, or None.

    None too when a reviewer approved it already (the step runs again after the approval) or
    when its node needs no capability. A condition that cannot be evaluated asks for approval:
    a policy never lets a step through by failing."""
    if (ctx.step.state or {}).get("approved_under"):
        return None
    needed = node_type.required_capabilities(ctx.config)
    if not needed:
        return None
    for policy in tenant_policies(ctx.tenant.settings):
        if not policy.covers(needed):
            continue
        if not policy.when:
            return policy
        try:
            if evaluate(policy.when, ctx.variables):
                return policy
        except TemplateError:
            return policy
    return None


def step_preview(ctx: NodeContext, node_type: NodeType) -> dict[str, Any]:
    """What the step is about to do, for the reviewer: its templated settings rendered as they
    will be sent (a template that fails to render is shown as written, with the error)."""
    properties = node_type.full_schema().get("properties", {})
    preview: dict[str, Any] = {}
    for key, value in ctx.config.items():
        schema = properties.get(key, {})
        templated = schema.get("format") == "template" or key == "body" or (
            (schema.get("additionalProperties") or {}).get("format") == "template"
        )  # fmt: skip
        if key in ("retry", "timeout_s", "fallback", "response_schema", "label", "capability"):
            continue
        try:
            preview[key] = ctx.render(value) if templated else value
        except NodeError as exc:
            preview[key] = {"template": value, "error": str(exc)}
    return preview


def approval_wait(ctx: NodeContext, node_type: NodeType, policy: ApprovalPolicy) -> NodeResult:
    """Park the step: a review opens in the transaction that parks it (as for an approval node)."""
    needed = sorted(node_type.required_capabilities(ctx.config))
    guarded = [c for c in needed if policy.covers({c})]
    proposal = {"request": step_preview(ctx, node_type), "node": ctx.node["id"], "type": node_type.type,
                "capabilities": needed}  # fmt: skip
    label = (ctx.config.get("label") or ctx.node["id"])[:120]
    why = f"the {policy.name!r} policy" + (f" ({policy.when})" if policy.when else "")
    spec = {
        "title": f"{label}: {', '.join(guarded)} needs approval"[:200],
        "instructions": f"{node_type.title} '{label}' needs {', '.join(needed)}; {why} asks a person to "
        "approve it before it runs. Approve to let it run exactly as shown; reject to fail the step.",
        "proposal": proposal,
        "assigned_role": policy.role,
        "sla_s": policy.sla_s,
        "reason": "policy",
        "policy": policy.name,
    }
    ctx.recorded_inputs["policy"] = policy.name
    ctx.recorded_inputs["proposal"] = proposal
    opener = _review_opener
    if opener is None:
        raise NodeError(
            f"the {policy.name!r} policy requires a person's approval, and no review inbox is installed"
        )

    def on_wait(run, step) -> None:
        opener(run=run, step=step, **spec)

    return NodeResult(wait=True, state={"review": True, "policy": policy.name}, on_wait=on_wait)


# Who opens the review a policy asks for: the inbox registers ``review_create`` at start-up
# (flows never imports the inbox).
_review_opener: Callable[..., Any] | None = None


def set_review_opener(opener: Callable[..., Any]) -> None:
    global _review_opener
    _review_opener = opener


def policy_add(*, tenant, fields: dict, actor: str) -> ApprovalPolicy:
    """Add a tenant policy (checked by ``parse_policy``); the settings change is audited."""
    from studio.tenants.services import tenant_settings_update

    added: list[ApprovalPolicy] = []

    def add(settings: dict) -> list[dict]:
        existing = tenant_policies(settings)
        added.append(parse_policy(existing=existing, **fields))
        return [*(p.as_setting() for p in existing if not p.built_in), added[0].as_setting()]

    tenant_settings_update(tenant=tenant, path=("policies",), change=add, actor=actor)
    return added[0]


def policy_remove(*, tenant, name: str, actor: str) -> bool:
    """Remove a tenant policy by name; False when there is none (built-in ones cannot be removed)."""
    from studio.tenants.services import tenant_settings_update

    def remove(settings: dict) -> list[dict]:
        own = [p for p in tenant_policies(settings) if not p.built_in]
        if not any(p.name == name for p in own):
            raise LookupError(name)
        return [p.as_setting() for p in own if p.name != name]

    try:
        tenant_settings_update(tenant=tenant, path=("policies",), change=remove, actor=actor)
    except LookupError:
        return False
    return True
