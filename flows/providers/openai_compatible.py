"""Self-hosted models (vLLM, Ollama, llama.cpp) through the OpenAI chat completions format.

Regulated data stays on the tenant's own endpoint. The engine speaks Anthropic-style messages,
so this module translates both ways: system prompt and tool results become OpenAI messages,
tool calls come back as ToolCalls, and ``assistant_content`` is given in Anthropic blocks so
the agent loop does not care which provider it talks to. There is no SDK here, so the retry
loop (429, 5xx, connection failures; exponential backoff with jitter, honouring Retry-After)
is ours.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from typing import Any

import httpx

from flows.providers.base import (
    ModelRequest,
    ModelResponse,
    OutputSchemaError,
    ProviderError,
    ToolCall,
    assistant_blocks,
    content_text,
    is_retryable_status,
    parse_json_output,
    status_error,
)
from flows.providers.pricing import cost_usd

# Backoff between provider-level retries: base * 2**n with jitter, and never longer than the
# cap, even when the server asks for more (the engine's step retries take over from there).
RETRY_BASE_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 10.0

# The request never reached the model, so sending it again costs nothing. A read timeout is
# not retried here: the model may still be working, and retries would multiply the step's time.
_RESENDABLE_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError)

_FINISH_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
}


class OpenAICompatibleProvider:
    """POSTs to ``{base_url}/chat/completions``; the API key is optional (Bearer when given)."""

    name = "openai_compatible"

    def complete(self, request: ModelRequest, *, http_client: httpx.Client | None = None) -> ModelResponse:
        if not request.base_url:
            raise ProviderError("no base_url for the openai_compatible provider (e.g. http://vllm:8000/v1)")
        url = request.base_url.rstrip("/") + "/chat/completions"
        client = http_client or httpx.Client()
        try:
            payload = _post_with_retries(client, url, _request_body(request), _headers(request), request)
        finally:
            if http_client is None:
                client.close()
        return _model_response(payload, request)


def _headers(request: ModelRequest) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if request.api_key:
        headers["Authorization"] = f"Bearer {request.api_key}"
    if request.idempotency_key:
        headers["Idempotency-Key"] = request.idempotency_key
    return headers


def _request_body(request: ModelRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": request.model,
        "messages": _openai_messages(request),
        "max_tokens": request.max_tokens,
        "stream": False,
    }
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }
            for t in request.tools
        ]
    if request.output_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": request.output_schema},
        }
    return body


def _openai_messages(request: ModelRequest) -> list[dict[str, Any]]:
    """Anthropic-style messages as OpenAI chat messages, the system prompt first."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": request.system}] if request.system else []
    for message in request.messages:
        role, content = message["role"], message.get("content") or ""
        if isinstance(content, str):
            messages.append({"role": role, "content": content})
        elif role == "assistant":
            messages.append(_assistant_message(content))
        else:
            messages.extend(_user_messages(content))
    return messages


def _assistant_message(blocks: list[dict]) -> dict[str, Any]:
    _refuse_unsupported(blocks, {"text", "tool_use"})
    text = "".join(str(b.get("text", "")) for b in blocks if b["type"] == "text")
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    calls = [
        {
            "id": b["id"],
            "type": "function",
            "function": {"name": b["name"], "arguments": json.dumps(b["input"])},
        }
        for b in blocks
        if b["type"] == "tool_use"
    ]
    if calls:
        message["tool_calls"] = calls
    return message


def _user_messages(blocks: list[dict]) -> list[dict[str, Any]]:
    """Tool results become "tool" messages, which must directly follow the assistant's calls."""
    _refuse_unsupported(blocks, {"text", "tool_result"})
    messages: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": b["tool_use_id"], "content": content_text(b.get("content") or "")}
        for b in blocks
        if b["type"] == "tool_result"
    ]
    text = "\n".join(str(b.get("text", "")) for b in blocks if b["type"] == "text")
    if text:
        messages.append({"role": "user", "content": text})
    return messages


def _refuse_unsupported(blocks: list[dict], supported: set[str]) -> None:
    # Dropping an image or document silently would change what the model is asked.
    for block in blocks:
        if block.get("type") not in supported:
            raise ProviderError(
                f"the openai_compatible provider cannot send {block.get('type')!r} content blocks"
            )


def _post_with_retries(
    client: httpx.Client, url: str, body: dict, headers: dict[str, str], request: ModelRequest
) -> dict[str, Any]:
    """POST until a success, a non-retryable answer, or ``max_retries`` retries are spent."""
    timeout = httpx.Timeout(request.timeout_s)
    retries = f"after {request.max_retries} retries"
    for retry in range(request.max_retries + 1):
        last_try = retry == request.max_retries
        try:
            response = client.post(url, json=body, headers=headers, timeout=timeout)
        except _RESENDABLE_ERRORS as exc:
            if last_try:
                raise ProviderError(f"could not reach {url} ({retries}): {exc}", retryable=True) from exc
            time.sleep(_backoff_delay(retry, None))
            continue
        except httpx.TimeoutException as exc:
            raise ProviderError(
                f"{url} did not answer within {request.timeout_s:g}s", retryable=True
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(f"the connection to {url} failed: {exc}", retryable=True) from exc
        if response.is_success:
            return _json_body(response, url)
        if not is_retryable_status(response.status_code) or last_try:
            raise _status_error(response, request, retries)
        time.sleep(_backoff_delay(retry, response.headers))
    raise AssertionError("unreachable: the loop returns or raises on its last try")


def _backoff_delay(retry: int, headers: httpx.Headers | None) -> float:
    """Seconds to wait before retry number ``retry + 1``: the server's wish, else backoff."""
    asked = _retry_after(headers) if headers is not None else None
    if asked is not None:
        return min(max(asked, 0.0), MAX_RETRY_DELAY_S)
    return min(RETRY_BASE_DELAY_S * 2**retry, MAX_RETRY_DELAY_S) * random.uniform(0.5, 1.0)


def _retry_after(headers: httpx.Headers) -> float | None:
    """Retry-After (seconds or an HTTP date), or the non-standard retry-after-ms."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is not None:
                return email.utils.mktime_tz(parsed) - time.time()
    return None


def _json_body(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise ProviderError(f"{url} answered {response.status_code} with a body that is not JSON") from exc
    if not isinstance(payload, dict) or not payload.get("choices"):
        raise ProviderError(f"{url} answered without any choices: {str(payload)[:200]}")
    return payload


def _status_error(response: httpx.Response, request: ModelRequest, retries: str) -> ProviderError:
    return status_error(
        service="the model endpoint", status=response.status_code, detail=_error_detail(response),
        model=request.model, retries=retries,
    )  # fmt: skip


def _error_detail(response: httpx.Response) -> str:
    """The server's message: OpenAI's ``{"error": {"message"}}`` or vLLM's ``{"message"}``."""
    try:
        payload = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if payload.get("message"):
            return str(payload["message"])
    return str(payload)[:300]


def _model_response(payload: dict[str, Any], request: ModelRequest) -> ModelResponse:
    choice = payload["choices"][0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    calls = [_tool_call(raw, index) for index, raw in enumerate(message.get("tool_calls") or [])]
    finish = choice.get("finish_reason") or "stop"
    stop_reason = "tool_use" if calls else _FINISH_REASONS.get(finish, finish)
    data = None
    if request.output_schema is not None and not calls:
        data = _json_answer(text, stop_reason, request.output_schema)
    usage = payload.get("usage") or {}
    tokens_in, tokens_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    model = payload.get("model") or request.model
    return ModelResponse(
        text=text,
        tool_calls=calls,
        stop_reason=stop_reason,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd(model, tokens_in, tokens_out),
        model=model,
        json=data,
        assistant_content=assistant_blocks(text, calls),
    )


def _tool_call(raw: dict[str, Any], index: int) -> ToolCall:
    function = raw.get("function") or {}
    name = function.get("name") or ""
    arguments = function.get("arguments") or "{}"
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError as exc:
            raise ProviderError(f"the model called tool {name!r} with arguments that are not JSON") from exc
    if not isinstance(arguments, dict):
        raise ProviderError(f"the model called tool {name!r} with arguments that are not a JSON object")
    return ToolCall(id=raw.get("id") or f"call_{index}", name=name, input=arguments)


def _json_answer(text: str, stop_reason: str, schema: dict) -> Any:
    if stop_reason == "max_tokens":
        raise OutputSchemaError("the answer was cut off by max_tokens before the JSON was complete")
    return parse_json_output(text, schema)
