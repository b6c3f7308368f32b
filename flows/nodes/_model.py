"""What the model-calling nodes (llm, agent, router) share: config fields and the call itself."""

from __future__ import annotations

from django.conf import settings

from flows.nodes.base import NodeContext, NodeError
from flows.providers import PROVIDER_NAMES, ModelRequest, ModelResponse, ProviderError, get_provider

DEFAULT_MODEL = "claude-sonnet-4-6"
ANTHROPIC_SECRET_NAME = "anthropic_api_key"  # used when a node names no credential

MODEL_PROPERTIES: dict[str, dict] = {
    "provider": {"type": "string", "enum": list(PROVIDER_NAMES), "default": "anthropic", "title": "Provider"},
    "model": {"type": "string", "default": DEFAULT_MODEL, "minLength": 1, "title": "Model"},
    "system": {"type": "string", "format": "template", "x-multiline": True, "title": "System prompt"},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": 64000, "default": 1024, "title": "Max tokens"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 1, "title": "Temperature"},
    "api_key_secret": {"type": "string", "format": "secret-ref", "title": "API key credential"},
    "base_url": {
        "type": "string",
        "title": "Endpoint (OpenAI-compatible)",
        "description": "e.g. http://vllm:8000/v1",
    },
    "script": {
        "type": "object",
        "title": "Scripted answers",
        "description": "For the offline 'scripted' provider: responses by turn, or rules by content.",
    },
}

# An OpenAI-compatible endpoint needs its URL.
MODEL_RULES: list[dict] = [
    {
        "if": {"properties": {"provider": {"const": "openai_compatible"}}, "required": ["provider"]},
        "then": {"required": ["base_url"]},
    },
]


def _api_key(ctx: NodeContext, provider: str) -> str | None:
    from studio.tenants.selectors import secret_value

    name = ctx.config.get("api_key_secret")
    if name:
        return ctx.secret(name)
    if provider == "anthropic":
        return (
            secret_value(tenant=ctx.tenant, name=ANTHROPIC_SECRET_NAME) or settings.ANTHROPIC_API_KEY or None
        )
    return None


def model_request(ctx: NodeContext, *, messages: list[dict], turn: int = 0, **extra) -> ModelRequest:
    config = ctx.config
    provider = config.get("provider", "anthropic")
    return ModelRequest(
        model=config.get("model", DEFAULT_MODEL),
        messages=messages,
        system=ctx.render_text(config.get("system", "")),
        max_tokens=config.get("max_tokens", 1024),
        temperature=config.get("temperature"),
        timeout_s=ctx.timeout_s,
        # The engine owns retries (with its own backoff and checkpoint); one quick SDK retry
        # smooths over a blip without holding the worker thread for long.
        max_retries=1,
        idempotency_key=f"{ctx.idempotency_key}:{turn}",
        attempt=ctx.attempt,
        turn=turn,
        script=config.get("script"),
        api_key=None if provider == "scripted" else _api_key(ctx, provider),
        base_url=config.get("base_url"),
        **extra,
    )


def call_model(ctx: NodeContext, request: ModelRequest) -> ModelResponse:
    from flows.budget import BudgetExceeded, budget_check

    provider = ctx.config.get("provider", "anthropic")
    try:
        budget_check(ctx.tenant)
    except BudgetExceeded as exc:
        raise NodeError(str(exc), details={"budget": True}) from None
    try:
        return get_provider(provider).complete(request)
    except ProviderError as exc:
        raise NodeError(
            f"{provider}: {exc.message}", retryable=exc.retryable, details={"status": exc.status}
        ) from None
