"""An offline, deterministic provider for demos and tests: the answers come from a script.

``request.script`` picks the answer:

- ``{"rules": [{"contains": "refund", "respond": R}, ...]}``: the first rule whose substring
  (or any of a list of substrings, case-insensitive) is in the last user message;
- ``{"responses": [R, ...]}``: ``responses[min(request.turn, len - 1)]``, for agent loops;
- ``{"default": R}``: when nothing above matched.

``R`` is a string (the text) or an object with any of ``text``, ``json``, ``tool_calls``
(``[{"name", "input", "id"?}]``), ``confidence``, ``tokens_in``, ``tokens_out``,
``stop_reason``, ``delay_ms``, ``fail`` (``rate_limit``, ``server_error``, ``timeout``,
``bad_request``) and ``fail_attempts`` (fail while ``request.attempt`` is at most this;
always when absent). Without a script, or when nothing matches, the answer echoes the
question, or is a minimal instance of the output schema when one is required.

Costs use the price of ``request.model``, so a demo on "claude-sonnet-4-5" shows real costs.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from flows.providers.base import (
    ModelRequest,
    ModelResponse,
    ProviderError,
    ToolCall,
    assistant_blocks,
    content_text,
    estimate_tokens,
    last_user_text,
    parse_json_output,
    validate_output,
)
from flows.providers.pricing import cost_usd

if TYPE_CHECKING:
    import httpx

# fail kind -> (message, retryable, HTTP status it stands for)
FAILURES: dict[str, tuple[str, bool, int | None]] = {
    "rate_limit": ("rate limited (scripted 429)", True, 429),
    "server_error": ("the model server failed (scripted 500)", True, 500),
    "timeout": ("the model did not answer in time (scripted timeout)", True, None),
    "bad_request": ("the model refused the request (scripted 400)", False, 400),
}


class ScriptedProvider:
    """Answers from ``request.script``; never touches the network, so ``http_client`` is unused."""

    name = "scripted"

    def complete(self, request: ModelRequest, *, http_client: httpx.Client | None = None) -> ModelResponse:
        answer = _chosen_answer(request)
        _wait(answer, request)
        _fail_if_scripted(answer, request)
        return _model_response(answer, request)


def _chosen_answer(request: ModelRequest) -> dict[str, Any] | None:
    """The scripted answer for this request as an object, or None when the script has none."""
    script = request.script
    if script is None:
        return None
    if not isinstance(script, dict):
        raise ProviderError("the script must be an object with rules, responses or default")
    question = last_user_text(request.messages).lower()
    for index, rule in enumerate(_list(script, "rules")):
        if _rule_matches(rule, question, f"script.rules[{index}]"):
            return _as_answer(rule.get("respond", ""), f"script.rules[{index}].respond")
    responses = _list(script, "responses")
    if responses:
        index = min(max(request.turn, 0), len(responses) - 1)
        return _as_answer(responses[index], f"script.responses[{index}]")
    if "default" in script:
        return _as_answer(script["default"], "script.default")
    return None


def _list(script: dict, key: str) -> list:
    value = script.get(key) or []
    if not isinstance(value, list):
        raise ProviderError(f"script.{key} must be a list")
    return value


def _rule_matches(rule: Any, question: str, where: str) -> bool:
    if not isinstance(rule, dict):
        raise ProviderError(f"{where} must be an object with contains and respond")
    needles = rule.get("contains")
    needles = [needles] if isinstance(needles, str) else needles
    if not isinstance(needles, list) or not all(isinstance(n, str) for n in needles):
        raise ProviderError(f"{where}.contains must be a string or a list of strings")
    return any(needle.lower() in question for needle in needles)


def _as_answer(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"text": value}
    if isinstance(value, dict):
        return value
    raise ProviderError(f"{where} must be a string or an object")


def _wait(answer: dict[str, Any] | None, request: ModelRequest) -> None:
    """Sleep ``delay_ms``, but no longer than the request's timeout, as a real client would."""
    delay_s = float((answer or {}).get("delay_ms") or 0) / 1000
    if delay_s > request.timeout_s:
        time.sleep(request.timeout_s)
        raise ProviderError(
            f"the scripted model did not answer within {request.timeout_s:g}s", retryable=True
        )
    if delay_s > 0:
        time.sleep(delay_s)


def _fail_if_scripted(answer: dict[str, Any] | None, request: ModelRequest) -> None:
    kind = (answer or {}).get("fail")
    if not kind:
        return
    if kind not in FAILURES:
        raise ProviderError(f"unknown scripted failure {kind!r} (known: {', '.join(FAILURES)})")
    fail_attempts = (answer or {}).get("fail_attempts")
    if fail_attempts is None or request.attempt <= int(fail_attempts):
        message, retryable, status = FAILURES[kind]
        raise ProviderError(message, retryable=retryable, status=status)


def _model_response(answer: dict[str, Any] | None, request: ModelRequest) -> ModelResponse:
    question = last_user_text(request.messages)
    answer = answer if answer is not None else _unscripted_answer(question, request.output_schema)
    calls = _tool_calls(answer.get("tool_calls") or [], request.turn)
    data = _json_answer(answer, request.output_schema) if not calls else answer.get("json")
    text = answer.get("text")
    if text is None:
        text = json.dumps(data, ensure_ascii=False) if data is not None else ""
    tokens_in = int(answer.get("tokens_in", estimate_tokens(_prompt_text(request))))
    tokens_out = int(answer.get("tokens_out", estimate_tokens(text + _calls_text(calls))))
    confidence = answer.get("confidence")
    return ModelResponse(
        text=str(text),
        tool_calls=calls,
        stop_reason=answer.get("stop_reason") or ("tool_use" if calls else "end_turn"),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=cost_usd(request.model, tokens_in, tokens_out),
        model=request.model or "scripted",
        json=data,
        confidence=float(confidence) if confidence is not None else None,
        assistant_content=assistant_blocks(str(text), calls),
    )


def _unscripted_answer(question: str, schema: dict | None) -> dict[str, Any]:
    if schema is not None:
        return {"json": example_for_schema(schema)}
    return {"text": f"scripted answer to: {question[:80]}"}


def _tool_calls(raw_calls: Any, turn: int) -> list[ToolCall]:
    if not isinstance(raw_calls, list):
        raise ProviderError("a scripted answer's tool_calls must be a list")
    calls = []
    for index, raw in enumerate(raw_calls):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ProviderError(f"scripted tool_calls[{index}] needs a name")
        call_id = raw.get("id") or f"toolu_scripted_{turn}_{index}"
        calls.append(ToolCall(id=call_id, name=raw["name"], input=dict(raw.get("input") or {})))
    return calls


def _json_answer(answer: dict[str, Any], schema: dict | None) -> Any:
    """The JSON answer, validated when the request has an output schema."""
    if schema is None:
        return answer.get("json")
    if "json" in answer:
        validate_output(answer["json"], schema)
        return answer["json"]
    if "text" in answer:
        return parse_json_output(str(answer["text"]), schema)
    data = example_for_schema(schema)
    validate_output(data, schema)
    return data


def _prompt_text(request: ModelRequest) -> str:
    return "\n".join([request.system, *(content_text(m.get("content") or "") for m in request.messages)])


def _calls_text(calls: list[ToolCall]) -> str:
    return "".join(call.name + json.dumps(call.input, sort_keys=True) for call in calls)


def example_for_schema(schema: dict) -> Any:
    """A small deterministic instance of ``schema``, so unscripted demos still answer in shape.

    It covers the usual shapes (const, enum, default, objects, arrays, scalars); the result is
    validated afterwards, so an exotic schema fails with a clear OutputSchemaError.
    """
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("enum", "examples", "anyOf", "oneOf"):
        if schema.get(key):
            first = schema[key][0]
            return example_for_schema(first) if key in ("anyOf", "oneOf") else first
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: example_for_schema(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1) if schema.get("maxItems", 1) else 0
        return [example_for_schema(schema.get("items") or {}) for _ in range(count)]
    return _scalar_example(kind, schema)


def _scalar_example(kind: Any, schema: dict) -> Any:
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "scripted" if kind == "string" else None
