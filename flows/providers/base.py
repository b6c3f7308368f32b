"""The provider interface the flow engine calls, and what every provider shares.

A provider turns one :class:`ModelRequest` into one :class:`ModelResponse`. The engine owns
step retries, budgets and audit; a provider owns the wire format, its own short retry loop
for transient failures, and the translation of every failure into a :class:`ProviderError`
whose ``retryable`` flag tells the engine whether another step attempt can help.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

import jsonschema
from jsonschema.exceptions import SchemaError

if TYPE_CHECKING:
    import httpx

PROVIDER_NAMES: tuple[str, ...] = ("anthropic", "openai_compatible", "scripted")

# Imported lazily so that loading the engine (or the scripted provider in a demo) does not pay
# for importing the Anthropic SDK, and so the provider modules can import this one freely.
_PROVIDER_CLASSES: dict[str, str] = {
    "anthropic": "flows.providers.anthropic:AnthropicProvider",
    "openai_compatible": "flows.providers.openai_compatible:OpenAICompatibleProvider",
    "scripted": "flows.providers.scripted:ScriptedProvider",
}
_instances: dict[str, Provider] = {}


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call, described the way Anthropic's Messages API expects."""

    name: str
    description: str
    input_schema: dict


@dataclass(frozen=True)
class ToolCall:
    """One tool call the model asked for; ``id`` pairs it with the tool_result sent back."""

    id: str
    name: str
    input: dict


@dataclass
class ModelRequest:
    """Everything one model call needs; see the module docstring of each provider for its use."""

    model: str
    messages: list[dict]
    system: str = ""
    max_tokens: int = 1024
    temperature: float | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    output_schema: dict | None = None
    timeout_s: float = 60.0
    max_retries: int = 2
    idempotency_key: str = ""
    attempt: int = 1
    turn: int = 0
    script: dict | None = None
    api_key: str | None = None
    base_url: str | None = None


@dataclass
class ModelResponse:
    """One assistant turn, with the usage and cost the step records."""

    text: str
    tool_calls: list[ToolCall]
    stop_reason: str
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    model: str
    json: Any = None
    confidence: float | None = None
    assistant_content: list[dict] = field(default_factory=list)


class ProviderError(Exception):
    """A model call failed; ``retryable`` says whether trying the step again may succeed."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        # Celery pickles exceptions across processes; keep the keyword-only fields.
        return (_rebuild_error, (type(self), self.message, self.retryable, self.status))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, retryable={self.retryable}, status={self.status})"


class OutputSchemaError(ProviderError):
    """The answer was not JSON, or did not match the requested output schema."""


def _rebuild_error(
    cls: type[ProviderError], message: str, retryable: bool, status: int | None
) -> ProviderError:
    return cls(message, retryable=retryable, status=status)


class Provider(Protocol):
    """What the engine calls. ``http_client`` lets tests and pooled workers supply the transport."""

    name: str

    def complete(
        self, request: ModelRequest, *, http_client: httpx.Client | None = None
    ) -> ModelResponse: ...


def get_provider(name: str) -> Provider:
    """The shared provider instance for ``name`` (providers are stateless, so one each is enough)."""
    if name not in _PROVIDER_CLASSES:
        known = ", ".join(PROVIDER_NAMES)
        raise ProviderError(f"unknown model provider {name!r} (known: {known})")
    if name not in _instances:
        module_name, class_name = _PROVIDER_CLASSES[name].split(":")
        provider_class = getattr(importlib.import_module(module_name), class_name)
        _instances[name] = provider_class()
    return _instances[name]


def validate_output(data: Any, schema: dict) -> None:
    """Raise OutputSchemaError naming the first failing path when ``data`` does not match ``schema``."""
    try:
        validator_class = jsonschema.validators.validator_for(schema)
        validator_class.check_schema(schema)
    except SchemaError as exc:
        raise OutputSchemaError(f"the output schema is not a valid JSON Schema: {exc.message}") from exc
    error = jsonschema.exceptions.best_match(validator_class(schema).iter_errors(data))
    if error is not None:
        raise OutputSchemaError(
            f"the answer does not match the output schema at {error.json_path}: {error.message}"
        )


def parse_json_output(text: str, schema: dict) -> Any:
    """Parse a model's text answer as JSON and validate it; tolerates a Markdown code fence."""
    candidate = _strip_code_fence(text.strip())
    try:
        data = json.loads(candidate)
    except ValueError as exc:
        preview = text.strip()[:80]
        raise OutputSchemaError(f"the answer is not JSON ({exc.msg} at $, answer began {preview!r})") from exc
    validate_output(data, schema)
    return data


def _strip_code_fence(text: str) -> str:
    # Self-hosted models often wrap JSON in ```json ... ``` even when told not to.
    if text.startswith("```") and text.endswith("```"):
        body = text[3:-3]
        first_newline = body.find("\n")
        return body[first_newline + 1 :] if first_newline >= 0 else body
    return text


def estimate_tokens(text: str) -> int:
    """A rough, deterministic token count (about four characters per token) for offline use."""
    return len(text) // 4 + 1


def assistant_blocks(text: str, tool_calls: list[ToolCall]) -> list[dict]:
    """Anthropic-style content blocks for an assistant turn built from text and tool calls."""
    blocks: list[dict] = [{"type": "text", "text": text}] if text else []
    blocks.extend({"type": "tool_use", "id": c.id, "name": c.name, "input": c.input} for c in tool_calls)
    return blocks


def content_text(content: str | list[dict]) -> str:
    """The plain text of a message's content: text blocks and tool results, joined by newlines."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(content_text(block.get("content") or ""))
    return "\n".join(parts)


def last_user_text(messages: list[dict]) -> str:
    """The text of the most recent user message, or "" when there is none."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content") or "")
    return ""


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP error answer from a model service may pass: timeouts, conflicts, rate
    limits and server errors. Any other status is the request's own fault and will repeat."""
    return status in (408, 409, 429) or status >= 500


def status_error(*, service: str, status: int, detail: str, model: str, retries: str) -> ProviderError:
    """One wording for an HTTP error answer from any model service ("the Anthropic API", "the
    model endpoint"): what went wrong, and whether retrying later can help."""
    retryable = is_retryable_status(status)
    if status == 401:
        message = f"{service} refused the API key (401): {detail}"
    elif status == 403:
        message = f"{service} forbids this request for this key (403): {detail}"
    elif status == 404:
        message = f"{service} does not know model {model!r} or this endpoint (404): {detail}"
    elif status == 429:
        message = f"rate limited by {service} (429, {retries}): {detail}"
    elif status == 529:
        message = f"{service} is overloaded (529, {retries}): {detail}"
    elif retryable:
        message = f"{service} failed ({status}, {retries}): {detail}"
    else:
        message = f"{service} refused the request ({status}): {detail}"
    return ProviderError(message, retryable=retryable, status=status)
