"""The model-provider layer: real SDK and HTTP code against a mocked model server.

Only the outside world is mocked: Anthropic and the OpenAI-compatible server are
``httpx.MockTransport`` handlers, and the tests read back what those handlers received.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from flows.providers import (
    PROVIDER_NAMES,
    ModelRequest,
    ModelResponse,
    OutputSchemaError,
    ProviderError,
    ToolCall,
    ToolSpec,
    get_provider,
    openai_compatible,
)
from flows.providers.pricing import cost_usd, known_models

# The SDK warns about model retirement dates; the tests pin model ids on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]

LABEL_SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["refund", "other"]}, "score": {"type": "number"}},
    "required": ["label"],
    "additionalProperties": False,
}
WEATHER_TOOL = ToolSpec(
    name="get_weather",
    description="Current weather for a city.",
    input_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


class ModelServer:
    """A scripted model server: answers requests in order and remembers every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, Exception):
            raise reply
        return reply(request) if callable(reply) else reply

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]

    @property
    def idempotency_keys(self) -> list[str | None]:
        return [request.headers.get("Idempotency-Key") for request in self.requests]


def ask(**overrides: Any) -> ModelRequest:
    fields: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Is this a refund request?"}],
        "api_key": "sk-test",
        "idempotency_key": "run-1:classify:1",
    }
    return ModelRequest(**(fields | overrides))


# --- Anthropic ---------------------------------------------------------------------------------


def claude_message(
    content: list[dict], *, stop_reason: str = "end_turn", usage: tuple[int, int] = (10, 5), model: str = ""
) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": model or "claude-sonnet-4-5-20250929",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
        },
    )


def claude_error(status: int, kind: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"type": "error", "error": {"type": kind, "message": message}}, headers=headers
    )


def call_claude(server: ModelServer, request: ModelRequest) -> ModelResponse:
    with server.client() as client:
        return get_provider("anthropic").complete(request, http_client=client)


def test_anthropic_text_answer_reports_tokens_and_cost():
    server = ModelServer(claude_message([{"type": "text", "text": "Yes, a refund."}], usage=(1000, 200)))

    response = call_claude(server, ask(system="You triage tickets.", max_tokens=300, temperature=0.2))

    assert response.text == "Yes, a refund."
    assert (response.tokens_in, response.tokens_out) == (1000, 200)
    assert response.cost_usd == Decimal("0.006000")  # $3 / $15 per million, priced by family
    assert response.model == "claude-sonnet-4-5-20250929"
    assert response.stop_reason == "end_turn"
    assert response.tool_calls == []
    assert response.json is None
    [sent] = server.requests
    assert sent.url.path == "/v1/messages"
    assert sent.headers["Idempotency-Key"] == "run-1:classify:1"
    assert server.bodies[0] == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 300,
        "system": "You triage tickets.",
        "messages": [{"role": "user", "content": "Is this a refund request?"}],
        "temperature": 0.2,
    }


def test_anthropic_json_output_comes_from_the_forced_respond_tool():
    server = ModelServer(
        claude_message(
            [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "respond",
                    "input": {"label": "refund", "score": 0.9},
                }
            ],
            stop_reason="tool_use",
        )
    )

    response = call_claude(server, ask(output_schema=LABEL_SCHEMA))

    assert response.json == {"label": "refund", "score": 0.9}
    assert response.stop_reason == "end_turn"
    assert response.tool_calls == []
    body = server.bodies[0]
    assert body["tools"] == [
        {"name": "respond", "description": body["tools"][0]["description"], "input_schema": LABEL_SCHEMA}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "respond"}


def test_anthropic_json_output_not_matching_the_schema_names_the_failing_path():
    server = ModelServer(
        claude_message(
            [{"type": "tool_use", "id": "toolu_1", "name": "respond", "input": {"label": "maybe"}}],
            stop_reason="tool_use",
        )
    )

    with pytest.raises(OutputSchemaError) as failure:
        call_claude(server, ask(output_schema=LABEL_SCHEMA))

    assert failure.value.retryable is False
    assert "$.label" in failure.value.message
    assert "'maybe' is not one of" in failure.value.message


def test_anthropic_json_output_cut_off_by_max_tokens_says_so():
    server = ModelServer(claude_message([{"type": "text", "text": "Let me"}], stop_reason="max_tokens"))

    with pytest.raises(OutputSchemaError, match="cut off by max_tokens"):
        call_claude(server, ask(output_schema=LABEL_SCHEMA))


def test_anthropic_tool_use_is_parsed_and_its_assistant_content_round_trips():
    assistant_blocks = [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_7", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    server = ModelServer(
        claude_message(assistant_blocks, stop_reason="tool_use"),
        claude_message([{"type": "text", "text": "It is 4 degrees in Oslo."}]),
    )
    question = [{"role": "user", "content": "Weather in Oslo?"}]

    first = call_claude(server, ask(messages=question, tools=[WEATHER_TOOL]))
    follow_up = [
        *question,
        {"role": "assistant", "content": first.assistant_content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_7", "content": "4 C"}]},
    ]
    second = call_claude(server, ask(messages=follow_up, tools=[WEATHER_TOOL], turn=1))

    assert first.stop_reason == "tool_use"
    assert first.tool_calls == [ToolCall(id="toolu_7", name="get_weather", input={"city": "Oslo"})]
    assert first.text == "Let me check."
    assert server.bodies[0]["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "input_schema": WEATHER_TOOL.input_schema,
        }
    ]
    assert "tool_choice" not in server.bodies[0]
    assert server.bodies[1]["messages"][1] == {"role": "assistant", "content": assistant_blocks}
    assert second.text == "It is 4 degrees in Oslo."


def test_anthropic_agent_with_output_schema_must_either_act_or_answer():
    server = ModelServer(
        claude_message(
            [{"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}],
            stop_reason="tool_use",
        )
    )

    response = call_claude(server, ask(tools=[WEATHER_TOOL], output_schema=LABEL_SCHEMA))

    assert server.bodies[0]["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert [tool["name"] for tool in server.bodies[0]["tools"]] == ["get_weather", "respond"]
    assert response.stop_reason == "tool_use"
    assert response.tool_calls == [ToolCall(id="toolu_2", name="get_weather", input={"city": "Rome"})]
    assert response.json is None


def test_anthropic_rate_limit_is_retried_with_the_same_idempotency_key():
    server = ModelServer(
        claude_error(429, "rate_limit_error", "Slow down", **{"retry-after": "0"}),
        claude_message([{"type": "text", "text": "ok"}]),
    )

    response = call_claude(server, ask(max_retries=2))

    assert response.text == "ok"
    assert len(server.requests) == 2
    assert server.idempotency_keys == ["run-1:classify:1", "run-1:classify:1"]


def test_anthropic_timeout_is_a_retryable_provider_error():
    server = ModelServer(httpx.ReadTimeout("read timed out"))

    with pytest.raises(ProviderError) as failure:
        call_claude(server, ask(max_retries=0, timeout_s=2.5))

    assert failure.value.retryable is True
    assert "did not answer within 2.5s" in failure.value.message
    assert server.requests[0].extensions["timeout"]["read"] == 2.5


def test_anthropic_refused_api_key_is_not_retryable():
    server = ModelServer(claude_error(401, "authentication_error", "invalid x-api-key"))

    with pytest.raises(ProviderError) as failure:
        call_claude(server, ask(max_retries=2))

    assert failure.value.retryable is False
    assert failure.value.status == 401
    assert failure.value.message.startswith("the Anthropic API refused the API key")
    assert len(server.requests) == 1


def test_anthropic_overloaded_after_all_retries_is_retryable():
    server = ModelServer(claude_error(529, "overloaded_error", "Overloaded", **{"retry-after-ms": "1"}))

    with pytest.raises(ProviderError) as failure:
        call_claude(server, ask(max_retries=2))

    assert failure.value.retryable is True
    assert failure.value.status == 529
    assert "overloaded" in failure.value.message
    assert len(server.requests) == 3
    assert set(server.idempotency_keys) == {"run-1:classify:1"}


def test_anthropic_without_api_key_fails_before_calling_out():
    server = ModelServer(claude_message([{"type": "text", "text": "unreachable"}]))

    with pytest.raises(ProviderError, match="no API key") as failure:
        call_claude(server, ask(api_key=None))

    assert failure.value.retryable is False
    assert server.requests == []


# --- OpenAI-compatible (self-hosted) ------------------------------------------------------------

SELF_HOSTED = "http://vllm.internal:8000/v1"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry schedule stays real; only its base delay shrinks so the suite stays fast."""
    monkeypatch.setattr(openai_compatible, "RETRY_BASE_DELAY_S", 0.001)


def chat_completion(
    message: dict[str, Any], *, finish_reason: str = "stop", usage: tuple[int, int] = (12, 4)
) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "llama-3.1-8b-instruct",
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
            ],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        },
    )


def call_self_hosted(server: ModelServer, request: ModelRequest) -> ModelResponse:
    with server.client() as client:
        return get_provider("openai_compatible").complete(request, http_client=client)


def local_ask(**overrides: Any) -> ModelRequest:
    return ask(**({"model": "llama-3.1-8b-instruct", "base_url": SELF_HOSTED + "/"} | overrides))


def test_openai_compatible_text_answer_sends_the_system_prompt_first():
    server = ModelServer(chat_completion({"content": "A refund."}))

    response = call_self_hosted(server, local_ask(system="You triage tickets.", max_tokens=64, temperature=0))

    assert response.text == "A refund."
    assert (response.tokens_in, response.tokens_out) == (12, 4)
    assert response.cost_usd == Decimal("0")
    assert response.stop_reason == "end_turn"
    assert response.assistant_content == [{"type": "text", "text": "A refund."}]
    [sent] = server.requests
    assert str(sent.url) == "http://vllm.internal:8000/v1/chat/completions"
    assert sent.headers["Authorization"] == "Bearer sk-test"
    assert sent.headers["Idempotency-Key"] == "run-1:classify:1"
    assert server.bodies[0] == {
        "model": "llama-3.1-8b-instruct",
        "messages": [
            {"role": "system", "content": "You triage tickets."},
            {"role": "user", "content": "Is this a refund request?"},
        ],
        "max_tokens": 64,
        "temperature": 0,
        "stream": False,
    }


def test_openai_compatible_sends_no_authorization_without_a_key():
    server = ModelServer(chat_completion({"content": "ok"}))

    call_self_hosted(server, local_ask(api_key=None))

    assert "Authorization" not in server.requests[0].headers


def test_openai_compatible_maps_tools_and_tool_results_both_ways():
    server = ModelServer(
        chat_completion(
            {
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'},
                    }
                ],
            },
            finish_reason="tool_calls",
        )
    )
    history = [
        {"role": "user", "content": "Weather in Oslo, then Lima?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_8", "name": "get_weather", "input": {"city": "Oslo"}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_8", "content": "4 C"}]},
    ]

    response = call_self_hosted(server, local_ask(messages=history, tools=[WEATHER_TOOL]))

    assert response.stop_reason == "tool_use"
    assert response.tool_calls == [ToolCall(id="call_9", name="get_weather", input={"city": "Lima"})]
    assert response.assistant_content == [
        {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Lima"}}
    ]
    body = server.bodies[0]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": WEATHER_TOOL.input_schema,
            },
        }
    ]
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_8",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_8", "content": "4 C"},
    ]


def test_openai_compatible_json_schema_answer_is_validated():
    server = ModelServer(
        chat_completion({"content": '{"label": "refund", "score": 1}'}),
        chat_completion({"content": '{"label": "refund", "extra": true}'}),
        chat_completion({"content": "Sure! Here is the JSON"}),
    )

    response = call_self_hosted(server, local_ask(output_schema=LABEL_SCHEMA))
    with pytest.raises(OutputSchemaError) as mismatch:
        call_self_hosted(server, local_ask(output_schema=LABEL_SCHEMA))
    with pytest.raises(OutputSchemaError, match="not JSON"):
        call_self_hosted(server, local_ask(output_schema=LABEL_SCHEMA))

    assert response.json == {"label": "refund", "score": 1}
    assert server.bodies[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": LABEL_SCHEMA},
    }
    assert "$" in mismatch.value.message and "'extra' was unexpected" in mismatch.value.message
    assert mismatch.value.retryable is False


def test_openai_compatible_rate_limit_is_retried_with_the_same_idempotency_key():
    server = ModelServer(
        httpx.Response(429, json={"error": {"message": "busy"}}, headers={"Retry-After": "0"}),
        chat_completion({"content": "ok"}),
    )

    response = call_self_hosted(server, local_ask(max_retries=2))

    assert response.text == "ok"
    assert server.idempotency_keys == ["run-1:classify:1", "run-1:classify:1"]


def test_openai_compatible_server_error_after_all_retries_is_retryable():
    server = ModelServer(httpx.Response(500, json={"object": "error", "message": "CUDA out of memory"}))

    with pytest.raises(ProviderError) as failure:
        call_self_hosted(server, local_ask(max_retries=2))

    assert failure.value.retryable is True
    assert failure.value.status == 500
    assert "CUDA out of memory" in failure.value.message
    assert len(server.requests) == 3


def test_openai_compatible_caps_a_long_retry_after(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(openai_compatible, "MAX_RETRY_DELAY_S", 0.01)
    server = ModelServer(
        httpx.Response(503, headers={"Retry-After": "3600"}),
        chat_completion({"content": "ok"}),
    )

    started = time.monotonic()
    response = call_self_hosted(server, local_ask(max_retries=1))

    assert response.text == "ok"
    assert time.monotonic() - started < 1


def test_openai_compatible_resends_after_a_connection_error():
    server = ModelServer(httpx.ConnectError("connection refused"), chat_completion({"content": "ok"}))

    response = call_self_hosted(server, local_ask(max_retries=1))

    assert response.text == "ok"
    assert len(server.requests) == 2


def test_openai_compatible_timeout_is_retryable_and_not_resent():
    server = ModelServer(httpx.ReadTimeout("read timed out"))

    with pytest.raises(ProviderError) as failure:
        call_self_hosted(server, local_ask(max_retries=2, timeout_s=3))

    assert failure.value.retryable is True
    assert "did not answer within 3s" in failure.value.message
    assert len(server.requests) == 1
    assert server.requests[0].extensions["timeout"]["read"] == 3


def test_openai_compatible_bad_request_is_not_retried():
    server = ModelServer(httpx.Response(400, json={"error": {"message": "max_tokens is too large"}}))

    with pytest.raises(ProviderError) as failure:
        call_self_hosted(server, local_ask(max_retries=2))

    assert failure.value.retryable is False
    assert failure.value.status == 400
    assert "max_tokens is too large" in failure.value.message
    assert len(server.requests) == 1


def test_openai_compatible_needs_a_base_url():
    with pytest.raises(ProviderError, match="no base_url"):
        get_provider("openai_compatible").complete(local_ask(base_url=None))


# --- Scripted ------------------------------------------------------------------------------------


def scripted(**overrides: Any) -> ModelResponse:
    return get_provider("scripted").complete(ask(**overrides))


def test_scripted_responses_follow_the_agent_turn():
    script = {"responses": ["first", {"text": "second"}, "last"]}

    answers = [scripted(script=script, turn=turn).text for turn in (0, 1, 2, 7)]

    assert answers == ["first", "second", "last", "last"]


def test_scripted_rules_match_the_last_user_message_case_insensitively():
    script = {
        "rules": [
            {"contains": "REFUND", "respond": "refund desk"},
            {"contains": ["invoice", "bill"], "respond": "billing"},
            {"contains": "refund", "respond": "never reached"},
        ],
        "responses": ["from responses"],
    }
    messages = [
        {"role": "user", "content": "I want a refund"},
        {"role": "assistant", "content": "Which order?"},
        {"role": "user", "content": [{"type": "text", "text": "The BILL from May"}]},
    ]

    assert scripted(script=script, messages=messages[:1]).text == "refund desk"
    assert scripted(script=script, messages=messages).text == "billing"
    assert scripted(script=script, messages=[{"role": "user", "content": "hello"}]).text == "from responses"
    assert scripted(script={"rules": script["rules"], "default": "fallback"}, messages=[]).text == "fallback"


def test_scripted_failure_lasts_for_fail_attempts_then_succeeds():
    script = {"default": {"text": "recovered", "fail": "rate_limit", "fail_attempts": 2}}

    failures = []
    for attempt in (1, 2):
        with pytest.raises(ProviderError) as failure:
            scripted(script=script, attempt=attempt)
        failures.append(failure.value)
    response = scripted(script=script, attempt=3)

    assert [(f.retryable, f.status) for f in failures] == [(True, 429), (True, 429)]
    assert response.text == "recovered"


def test_scripted_bad_request_fails_every_attempt_and_is_not_retryable():
    script = {"default": {"fail": "bad_request"}}

    with pytest.raises(ProviderError) as failure:
        scripted(script=script, attempt=9)

    assert (failure.value.retryable, failure.value.status) == (False, 400)


def test_scripted_tool_calls_get_deterministic_ids():
    script = {"responses": [{"tool_calls": [{"name": "get_weather", "input": {"city": "Oslo"}}]}]}

    response = scripted(script=script, turn=0)

    assert response.stop_reason == "tool_use"
    assert response.tool_calls == [
        ToolCall(id="toolu_scripted_0_0", name="get_weather", input={"city": "Oslo"})
    ]
    assert response.assistant_content == [
        {"type": "tool_use", "id": "toolu_scripted_0_0", "name": "get_weather", "input": {"city": "Oslo"}}
    ]


def test_scripted_json_answers_are_validated_against_the_output_schema():
    good = scripted(
        script={"default": {"json": {"label": "refund"}, "confidence": 0.8}}, output_schema=LABEL_SCHEMA
    )
    from_text = scripted(script={"default": '{"label": "other"}'}, output_schema=LABEL_SCHEMA)
    with pytest.raises(OutputSchemaError) as failure:
        scripted(
            script={"default": {"json": {"label": "refund", "score": "high"}}}, output_schema=LABEL_SCHEMA
        )

    assert (good.json, good.confidence, good.text) == ({"label": "refund"}, 0.8, '{"label": "refund"}')
    assert from_text.json == {"label": "other"}
    assert "$.score" in failure.value.message


def test_scripted_without_a_script_answers_deterministically():
    question = [{"role": "user", "content": "Summarise this ticket: " + "x" * 200}]

    first = scripted(messages=question, model="claude-haiku-4-5")
    second = scripted(messages=question, model="claude-haiku-4-5")
    shaped = scripted(messages=question, output_schema=LABEL_SCHEMA)

    assert first == second
    assert first.text == "scripted answer to: " + ("Summarise this ticket: " + "x" * 200)[:80]
    assert first.tokens_in == len("\n" + question[0]["content"]) // 4 + 1
    assert first.cost_usd == cost_usd("claude-haiku-4-5", first.tokens_in, first.tokens_out) > 0
    assert shaped.json == {"label": "refund", "score": 0}


def test_scripted_delay_beyond_the_timeout_is_a_retryable_timeout():
    with pytest.raises(ProviderError, match="did not answer within") as failure:
        scripted(script={"default": {"text": "late", "delay_ms": 500}}, timeout_s=0.02)

    assert failure.value.retryable is True
    assert scripted(script={"default": {"text": "on time", "delay_ms": 5}}, timeout_s=1).text == "on time"


# --- The interface, pricing, errors ------------------------------------------------------------


def test_every_provider_name_resolves_and_unknown_names_are_refused():
    assert [get_provider(name).name for name in PROVIDER_NAMES] == list(PROVIDER_NAMES)
    with pytest.raises(ProviderError, match="'gemini'"):
        get_provider("gemini")


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-sonnet-4-5-20250929", Decimal("0.018000")),
        ("claude-opus-4-1-20250805", Decimal("0.090000")),
        ("claude-opus-4", Decimal("0.090000")),
        ("claude-3-5-haiku-latest", Decimal("0.004800")),
        ("claude-haiku-4-5", Decimal("0.006000")),
        ("claude-opus-4-6", Decimal("0")),  # not a snapshot of claude-opus-4: no guessed price
        ("llama-3.1-8b-instruct", Decimal("0")),
    ],
)
def test_cost_is_priced_by_model_family(model: str, expected: Decimal):
    assert cost_usd(model, 1000, 1000) == expected


def test_known_models_lists_the_priced_families():
    assert {"claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-3-5-haiku"} <= set(
        known_models()
    )


def test_provider_errors_survive_pickling_for_celery():
    error = pickle.loads(pickle.dumps(OutputSchemaError("bad shape", status=422)))

    assert isinstance(error, OutputSchemaError)
    assert (error.message, error.retryable, error.status) == ("bad shape", False, 422)
