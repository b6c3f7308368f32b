"""The node registry: every node type's schema, handles and behaviour, in one place.

The API serves it (``GET node-types/``), the editor builds its palette and forms from it,
the validator checks graphs against it, and the engine runs nodes through it. Apps add
types at start-up with ``register`` (the inbox registers ``approval``; ``flows`` never
imports the inbox).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError

if TYPE_CHECKING:
    from flows.models import Run, StepRun
    from studio.tenants.models import Tenant

# Queues: control work (cheap, prefork) and outside calls (I/O bound, served by a thread pool).
QUEUE_DEFAULT = "studio"
QUEUE_IO = "studio.io"

# Settings every executable node accepts, merged into its config schema.
COMMON_PROPERTIES: dict[str, dict] = {
    "label": {"type": "string", "maxLength": 120, "title": "Label"},
    "timeout_s": {"type": "number", "minimum": 0.1, "maximum": 3600, "title": "Timeout (s)"},
    "retry": {
        "type": "object",
        "title": "Retries",
        "properties": {
            "max_attempts": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "backoff_s": {"type": "number", "minimum": 0, "maximum": 300, "default": 1},
        },
        "additionalProperties": False,
    },
    "fallback": {
        "type": "object",
        "title": "Fallback output",
        "description": "Used as the output when every attempt failed (instead of failing).",
        "properties": {"output": {}},
        "required": ["output"],
        "additionalProperties": False,
    },
}


class NodeError(Exception):
    """A node failed. ``retryable`` errors are retried by the engine within the node's policy."""

    def __init__(self, message: str, *, retryable: bool = False, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.details = details


class CapabilityRefused(NodeError):
    """The flow was not granted what the node needs: stops the step whatever the node does
    with its other errors (an agent hands those back to the model; never this one)."""


@dataclass
class NodeResult:
    output: Any = None
    handles: list[str] = field(default_factory=lambda: ["out"])
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)
    model: str = ""
    confidence: float | None = None
    # A waiting node (map, sub-flow, approval) parks the step; something else completes it later.
    wait: bool = False
    state: Any = None
    # Called with (run, step) inside the transaction that parks the step, so what the wait needs
    # (a review task…) exists exactly when the step is waiting. Completed later by engine.step_resume.
    on_wait: Callable[[Run, StepRun], None] | None = None


@dataclass
class NodeContext:
    """What a node sees while it runs."""

    run: Run
    step: StepRun
    tenant: Tenant
    node: dict
    config: dict
    # Template variables: input, nodes (<id> → {"output": …}, upstream only), tenant.
    variables: dict
    upstream_output: Any
    timeout_s: float
    granted_capabilities: frozenset[str]
    recorded_inputs: dict = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return self.step.idempotency_key

    @property
    def attempt(self) -> int:
        return self.step.attempt

    def render(self, value: Any) -> Any:
        from flows.templating import TemplateError, render_value

        try:
            return render_value(value, self.variables)
        except TemplateError as exc:
            raise NodeError(str(exc)) from None

    @contextmanager
    def extra_variables(self, **extra: Any) -> Iterator[None]:
        """Templates rendered inside the block also see ``extra`` (an agent tool's ``args``, a map's
        ``item`` and ``index``)."""
        saved = self.variables
        self.variables = {**saved, **extra}
        try:
            yield
        finally:
            self.variables = saved

    def render_text(self, source: str) -> str:
        """A template rendered as text (prompts, system prompts): never a dict or a list, even
        when the template is a single ``{{ expression }}``."""
        from flows.templating import TemplateError, render

        try:
            return render(source, self.variables)
        except TemplateError as exc:
            raise NodeError(str(exc)) from None

    def require(self, capability: str) -> None:
        """Refuse the step unless the flow was granted ``capability`` (``*`` suffixes match)."""
        if not capability_granted(capability, self.granted_capabilities):
            raise CapabilityRefused(
                f"capability {capability!r} is not granted to this flow (admins grant it in Settings, Flow access)",
                details={"refused": capability},
            )

    def secret(self, name: str) -> str:
        from studio.tenants.selectors import secret_value

        value = secret_value(tenant=self.tenant, name=name)
        if value is None:
            raise NodeError(f"the tenant has no credential named {name!r}")
        return value


def capability_granted(capability: str, granted: frozenset[str] | set[str]) -> bool:
    if capability in granted:
        return True
    # "http:*" grants every host; "pricing.*" every pricing capability.
    return any(g.endswith("*") and capability.startswith(g[:-1]) for g in granted)


# Node types whose steps run child runs (map, sub-flow): their own tokens and cost only repeat
# their children's, and their outputs are the children's.
CHILD_RUN_TYPES = ("map", "subflow")

CAPABILITY_PATTERN = re.compile(r"^[a-z][a-z0-9_.*:-]{0,199}$")


def parse_capabilities(text: str) -> list[str]:
    """Capabilities typed in a field, separated by commas, spaces or new lines."""
    granted: list[str] = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        if not CAPABILITY_PATTERN.match(item):
            example = "e.g. http:api.example.com, billing.write, pricing.*"
            raise ValidationError({"granted_capabilities": f"{item[:60]!r} is not a capability ({example})"})
        if item not in granted:
            granted.append(item)
    return granted


@dataclass(frozen=True)
class NodeType:
    type: str
    title: str
    category: str
    help: str
    config_schema: dict
    execute: Callable[[NodeContext], NodeResult] | None = None
    inputs: tuple[str, ...] = ("in",)
    outputs: tuple[str, ...] = ("out",)
    # Output handles that depend on the config (router: one per class).
    dynamic_outputs: Callable[[dict], list[str]] | None = None
    can_fail: bool = True  # adds the "error" output handle
    # Pure and cheap: runs inside the task that made it ready (still its own StepRun).
    inline: bool = False
    queue: str = QUEUE_DEFAULT
    common: bool = True  # accepts COMMON_PROPERTIES (timeout, retry, fallback)
    executes: bool = True  # False for sticky notes
    capabilities: Callable[[dict], set[str]] | None = None
    # Reads its predecessor's output (``ctx.upstream_output``), not only what its templates name.
    uses_upstream: bool = False
    # Checks JSON Schema cannot express (a cron that parses…): messages for the node's problems.
    check: Callable[[dict], list[str]] | None = None
    icon: str = "●"
    color: str = "#4f46e5"
    default_timeout_s: float = 60.0
    # The audit log's action for each execution (``model.call``, ``tool.call``…), or a function
    # of the config giving it: set on the types that reach outside the studio; None for the rest.
    audit_action: str | Callable[[dict], str | None] | None = None

    def audit_action_for(self, config: dict) -> str | None:
        return self.audit_action(config) if callable(self.audit_action) else self.audit_action

    def output_handles(self, config: dict) -> list[str]:
        handles = list(self.dynamic_outputs(config) if self.dynamic_outputs else self.outputs)
        if self.can_fail:
            handles.append("error")
        return handles

    def full_schema(self) -> dict:
        schema = copy.deepcopy(self.config_schema)
        schema.setdefault("type", "object")
        if self.common:
            props = schema.setdefault("properties", {})
            for name, prop in COMMON_PROPERTIES.items():
                props.setdefault(name, copy.deepcopy(prop))
        return schema

    def required_capabilities(self, config: dict) -> set[str]:
        return self.capabilities(config) if self.capabilities else set()

    def describe(self) -> dict:
        """The registry entry served to the editor."""
        return {
            "type": self.type,
            "title": self.title,
            "category": self.category,
            "help": self.help,
            "config_schema": self.full_schema(),
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "dynamic_outputs": self.dynamic_outputs is not None,
            "can_fail": self.can_fail,
            "executes": self.executes,
            "icon": self.icon,
            "color": self.color,
        }


_REGISTRY: dict[str, NodeType] = {}


def register(node_type: NodeType) -> NodeType:
    if node_type.type in _REGISTRY and _REGISTRY[node_type.type] is not node_type:
        raise ValueError(f"node type {node_type.type!r} is registered twice")
    _REGISTRY[node_type.type] = node_type
    return node_type


def get_type(type_name: str) -> NodeType | None:
    return _REGISTRY.get(type_name)


def all_types() -> list[NodeType]:
    return sorted(_REGISTRY.values(), key=lambda t: (t.category, t.title))
