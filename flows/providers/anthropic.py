"""Claude through the official ``anthropic`` SDK.

The SDK does the wire format and its own retries (429, 529, 5xx, connection errors and
timeouts, exponential backoff with jitter, honouring ``retry-after``); this module shapes the
request, forces a ``respond`` tool when a JSON answer is required, and turns the SDK's errors
into ProviderErrors once those retries are spent.

The SDK (2.x) sends through ``httpx2``, not ``httpx``, and refuses ``httpx`` objects. The
engine hands every provider one ``httpx.Client``, so :class:`_HttpxBridge` carries the SDK's
requests over that client: the same connection pool, the same transport in tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anthropic
import httpx
import httpx2

from flows.providers.base import (
    ModelRequest,
    ModelResponse,
    OutputSchemaError,
    ProviderError,
    ToolCall,
    status_error,
    validate_output,
)
from flows.providers.pricing import cost_usd

if TYPE_CHECKING:
    from anthropic.types import Message

RESPOND_TOOL = "respond"
RESPOND_DESCRIPTION = "Give your final answer. Its input is the answer, matching the required JSON Schema."

# Response headers that describe the bytes on the wire; httpx has already decoded the body.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class AnthropicProvider:
    """Calls the Anthropic Messages API (or a compatible gateway at ``request.base_url``)."""

    name = "anthropic"

    def complete(self, request: ModelRequest, *, http_client: httpx.Client | None = None) -> ModelResponse:
        if not request.api_key:
            raise ProviderError(
                "no API key for the Anthropic provider: set a tenant secret or ANTHROPIC_API_KEY"
            )
        client = anthropic.Anthropic(
            api_key=request.api_key,
            base_url=request.base_url or None,
            max_retries=request.max_retries,
            timeout=request.timeout_s,
            http_client=_sdk_http_client(http_client),
        )
        try:
            message = client.messages.create(**_create_arguments(request))
        except anthropic.AnthropicError as exc:
            raise _provider_error(exc, request) from exc
        finally:
            # Closes the SDK's own pool, or the bridge; a caller's httpx2.Client stays open.
            if not isinstance(http_client, httpx2.Client):
                client.close()
        return _model_response(message, request)


def _sdk_http_client(http_client: httpx.Client | httpx2.Client | None) -> httpx2.Client | None:
    """An httpx2 client for the SDK that sends through the caller's client, if there is one."""
    if http_client is None or isinstance(http_client, httpx2.Client):
        return http_client
    return httpx2.Client(transport=_HttpxBridge(http_client))


class _HttpxBridge(httpx2.BaseTransport):
    """An httpx2 transport that sends each request through an ``httpx.Client``."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        outgoing = httpx.Request(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            content=request.read(),
            extensions={k: v for k, v in request.extensions.items() if k == "timeout"},
        )
        try:
            incoming = self._client.send(outgoing)
            body = incoming.read()
        except httpx.TransportError as exc:
            # The SDK recognises timeouts and connection errors by their httpx2 types.
            equivalent = getattr(httpx2, type(exc).__name__, httpx2.TransportError)
            raise equivalent(str(exc) or type(exc).__name__, request=request) from exc
        headers = [(k, v) for k, v in incoming.headers.multi_items() if k.lower() not in _WIRE_HEADERS]
        return httpx2.Response(incoming.status_code, headers=headers, content=body, request=request)

    def close(self) -> None:
        # The caller owns the httpx.Client and its pool; closing the SDK client must not close it.
        return None


def _create_arguments(request: ModelRequest) -> dict[str, Any]:
    """Keyword arguments for ``messages.create``."""
    arguments: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": request.messages,
    }
    if request.system:
        arguments["system"] = request.system
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools
    ]
    if request.output_schema is not None:
        if any(t.name == RESPOND_TOOL for t in request.tools):
            raise ProviderError(f"a tool may not be named {RESPOND_TOOL!r} when an output schema is set")
        tools.append(
            {"name": RESPOND_TOOL, "description": RESPOND_DESCRIPTION, "input_schema": request.output_schema}
        )
        arguments["tool_choice"] = _forced_tool_choice(has_other_tools=bool(request.tools))
    if tools:
        arguments["tools"] = tools
    if request.temperature is not None:
        # SDK 2.x dropped the temperature argument; the API still takes it for the models we price.
        arguments["extra_body"] = {"temperature": request.temperature}
    if request.idempotency_key:
        arguments["extra_headers"] = {"Idempotency-Key": request.idempotency_key}
    return arguments


def _forced_tool_choice(*, has_other_tools: bool) -> dict[str, Any]:
    """Make the model answer through ``respond``, or through any tool when it also has real tools.

    With real tools the model must still call one tool per turn, so an agent either acts or
    answers; one call at a time keeps every tool_use paired with the result the engine sends.
    """
    if has_other_tools:
        return {"type": "any", "disable_parallel_tool_use": True}
    return {"type": "tool", "name": RESPOND_TOOL}


def _model_response(message: Message, request: ModelRequest) -> ModelResponse:
    """Translate the SDK's Message, pulling the JSON answer out of the ``respond`` call."""
    blocks = [block.model_dump(mode="json", exclude_none=True) for block in message.content]
    text = "".join(block["text"] for block in blocks if block["type"] == "text")
    calls = [ToolCall(b["id"], b["name"], b.get("input") or {}) for b in blocks if b["type"] == "tool_use"]
    answer = next((c for c in calls if c.name == RESPOND_TOOL), None)
    stop_reason = str(message.stop_reason or "end_turn")
    data = None
    if request.output_schema is not None and answer is not None:
        validate_output(answer.input, request.output_schema)
        data = answer.input
        calls = [c for c in calls if c.name != RESPOND_TOOL]
        stop_reason = "tool_use" if calls else "end_turn"
    elif request.output_schema is not None and stop_reason != "tool_use":
        raise _missing_answer(stop_reason)
    tokens_in, tokens_out = message.usage.input_tokens, message.usage.output_tokens
    return ModelResponse(
        text=text,
        tool_calls=calls,
        stop_reason=stop_reason,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd(message.model or request.model, tokens_in, tokens_out),
        model=message.model or request.model,
        json=data,
        assistant_content=blocks,
    )


def _missing_answer(stop_reason: str) -> OutputSchemaError:
    if stop_reason == "max_tokens":
        return OutputSchemaError("the answer was cut off by max_tokens before the JSON was complete")
    return OutputSchemaError(f"the model did not give a JSON answer (stop reason {stop_reason!r})")


def _provider_error(exc: anthropic.AnthropicError, request: ModelRequest) -> ProviderError:
    """A ProviderError saying what went wrong and whether another attempt may help."""
    retries = f"after {request.max_retries} retries"
    if isinstance(exc, anthropic.APITimeoutError):
        return ProviderError(
            f"the Anthropic API did not answer within {request.timeout_s:g}s ({retries})", retryable=True
        )
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__ or exc
        return ProviderError(f"could not reach the Anthropic API ({retries}): {cause}", retryable=True)
    if isinstance(exc, anthropic.APIStatusError):
        return _status_error(exc, request, retries)
    return ProviderError(f"the Anthropic SDK failed: {exc}")


def _status_error(exc: anthropic.APIStatusError, request: ModelRequest, retries: str) -> ProviderError:
    return status_error(
        service="the Anthropic API", status=exc.status_code, detail=_api_error_message(exc),
        model=request.model, retries=retries,
    )  # fmt: skip


def _api_error_message(exc: anthropic.APIStatusError) -> str:
    """The API's own explanation, from ``{"type": "error", "error": {"type", "message"}}``."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('type', 'error')}: {error.get('message', '')}".strip()
    return exc.message
