"""The engine on a real worker: branching, joins, retries, errors, cancel, retry-from-failed."""

from __future__ import annotations

import pytest

from flows import engine
from flows.models import RunStatus, StepStatus
from studio.tenants.roles import Role
from tests.factories import make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, statuses, wait_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def tenant():
    return make_tenant("Engine")


def test_a_linear_flow_runs_to_its_output(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger", input_schema={"type": "object", "required": ["ticket"]}),
         scripted_llm("classify", "Classify: {{ input.ticket }}", script={"responses": ["billing"]}),
         node("result", "output", mapping={"label": "{{ nodes.classify.output.text }}"})],
        [edge("trigger", "classify"), edge("classify", "result")],
    ))  # fmt: skip
    run = wait_run(start(flow, {"ticket": "I was charged twice"}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"label": "billing"}
    assert statuses(run) == {"trigger": "succeeded", "classify": "succeeded", "result": "succeeded"}
    step = run.steps.get(node_id="classify")
    assert step.inputs == {"prompt": "Classify: I was charged twice"}
    assert step.tokens_in > 0 and step.cost_usd > 0 and step.model == "claude-haiku-4-5"
    assert run.tokens_in == step.tokens_in and run.cost_usd == step.cost_usd
    assert step.latency_ms is not None and step.attempt == 1


def test_a_condition_takes_one_branch_and_the_join_still_runs(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("big", "condition", expression="input.amount > 100"),
         node("review", "transform", template="needs review"),
         node("auto", "transform", template="auto-approved"),
         node("join", "transform", mapping={"r": "{{ nodes.review.output if nodes.review is defined else '' }}"}),
         node("done", "output")],
        [edge("trigger", "big"), edge("big", "review", "true"), edge("big", "auto", "false"),
         edge("review", "join"), edge("auto", "join"), edge("join", "done")],
    ))  # fmt: skip
    run = wait_run(start(flow, {"amount": 500}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert statuses(run) == {"trigger": "succeeded", "big": "succeeded", "review": "succeeded",
                             "auto": "skipped", "join": "succeeded", "done": "succeeded"}  # fmt: skip
    assert run.outputs == {"r": "needs review"}


def test_a_branch_not_taken_skips_everything_only_it_feeds(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("gate", "condition", expression="false"),
         node("a", "transform", template="a"), node("b", "transform", template="b"), node("out", "output")],
        [edge("trigger", "gate"), edge("gate", "a", "true"), edge("a", "b"), edge("b", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.SUCCEEDED
    assert statuses(run) == {"trigger": "succeeded", "gate": "succeeded", "a": "skipped", "b": "skipped",
                             "out": "skipped"}  # fmt: skip


def test_a_diamond_joins_after_both_parallel_model_calls(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         scripted_llm("left", script={"responses": [{"text": "L", "delay_ms": 200}]}),
         scripted_llm("right", script={"responses": ["R"]}),
         node("join", "transform", template="{{ nodes.left.output.text }}+{{ nodes.right.output.text }}"),
         node("out", "output", mapping={"joined": "{{ nodes.join.output }}"})],
        [edge("trigger", "left"), edge("trigger", "right"), edge("left", "join"), edge("right", "join"),
         edge("join", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"joined": "L+R"}
    join = run.steps.get(node_id="join")
    assert join.attempt == 1  # ran exactly once, after both inputs were in


def test_a_flow_too_big_to_read_whole_joins_and_skips_as_a_small_one_does(tenant):
    # More steps than a finishing step reads at once (engine.WHOLE_RUN_STEPS): each reads only
    # its successors, and a join asks whether its other inputs are done. 14 parallel model calls
    # join in one transform; a branch not taken skips its chain and the output it alone feeds.
    width = engine.WHOLE_RUN_STEPS + 2
    branches = [f"b{i:02d}" for i in range(width)]
    joined = "{{ nodes.b00.output.text }}+{{ nodes.%s.output.text }}".replace("%s", branches[-1])
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("gate", "condition", expression="false"),
         *(scripted_llm(b, script={"responses": [b.upper()]}) for b in branches),
         node("join", "transform", template=joined),
         node("done", "output", mapping={"joined": "{{ nodes.join.output }}"}),
         node("never", "transform", template="x"), node("unused", "output", mapping={"x": "never"})],
        [*(edge("trigger", b) for b in branches), *(edge(b, "join") for b in branches), edge("join", "done"),
         edge("trigger", "gate"), edge("gate", "never", "true"), edge("never", "unused")],
    ))  # fmt: skip
    assert len(flow.versions.get().graph["nodes"]) > engine.WHOLE_RUN_STEPS
    run = wait_run(start(flow), timeout=60)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"joined": f"B00+{branches[-1].upper()}"}
    found = statuses(run)
    assert {found[b] for b in branches} == {"succeeded"}
    assert (found["join"], found["done"], found["never"], found["unused"]) == (
        "succeeded",
        "succeeded",
        "skipped",
        "skipped",
    )
    assert run.steps.get(node_id="join").attempt == 1  # once, after all 14 inputs were in
    assert run.tokens_in == sum(s.tokens_in for s in run.steps.all()) > 0


def test_a_router_sends_each_class_down_its_own_path(tenant):
    classes = [{"id": "billing"}, {"id": "bug"}, {"id": "other"}]
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("route", "router", mode="rules", classes=classes, default_class="other",
              rules=[{"class": "billing", "when": "'charge' in input.text"},
                     {"class": "bug", "when": "'crash' in input.text"}]),
         node("b", "output", mapping={"path": "billing"}), node("g", "output", mapping={"path": "bug"}),
         node("o", "output", mapping={"path": "other"})],
        [edge("trigger", "route"), edge("route", "b", "billing"), edge("route", "g", "bug"),
         edge("route", "o", "other")],
    ))  # fmt: skip
    for text, expected in [("double charge", "billing"), ("app crash", "bug"), ("hello", "other")]:
        run = wait_run(start(flow, {"text": text}))
        assert run.outputs == {"path": expected}
        assert sorted(s for s, v in statuses(run).items() if v == "skipped") == sorted(
            {"b", "g", "o"} - {expected[0] if expected != "bug" else "g"}
        )


def test_a_model_router_classifies_with_the_model(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("route", "router", provider="scripted", model="claude-haiku-4-5", input="{{ input.text }}",
              classes=[{"id": "refund", "description": "money back"}, {"id": "other"}],
              script={"rules": [{"contains": "money", "respond": {"json": {"class": "refund", "confidence": 0.9}}}],
                      "default": {"json": {"class": "other"}}}),
         node("r", "output", mapping={"c": "refund"}), node("o", "output", mapping={"c": "other"})],
        [edge("trigger", "route"), edge("route", "r", "refund"), edge("route", "o", "other")],
    ))  # fmt: skip
    run = wait_run(start(flow, {"text": "I want my money back"}))
    assert run.outputs == {"c": "refund"}, run.error
    assert run.steps.get(node_id="route").confidence == 0.9


def test_retries_then_success(tenant):
    flaky = {"responses": [{"text": "ok", "fail": "server_error", "fail_attempts": 2}]}
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("call", script=flaky, retry={"max_attempts": 3, "backoff_s": 0.05}),
         node("out", "output")],
        [edge("trigger", "call"), edge("call", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.SUCCEEDED, run.error
    step = run.steps.get(node_id="call")
    assert step.attempt == 3
    assert [a["attempt"] for a in step.attempts] == [1, 2]


def test_exhausted_retries_take_the_error_output(tenant):
    broken = {"responses": [{"fail": "server_error"}]}
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("call", script=broken, retry={"max_attempts": 2, "backoff_s": 0}),
         node("ok", "output", mapping={"path": "ok"}), node("apology", "output", mapping={"path": "error"})],
        [edge("trigger", "call"), edge("call", "ok"), edge("call", "apology", "error")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.SUCCEEDED
    assert run.outputs == {"path": "error"}
    step = run.steps.get(node_id="call")
    assert (step.status, step.attempt, step.handles) == (StepStatus.FAILED, 2, ["error"])
    assert statuses(run)["ok"] == "skipped"


def test_a_failure_without_an_error_output_fails_the_run_naming_the_node(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("call", script={"responses": [{"fail": "bad_request"}]}),
         scripted_llm("after"), node("out", "output")],
        [edge("trigger", "call"), edge("call", "after"), edge("after", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.FAILED
    assert run.error["node"] == "call"
    assert statuses(run)["after"] == "cancelled"


def test_a_fallback_answers_when_every_attempt_failed(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         scripted_llm("call", script={"responses": [{"fail": "timeout"}]}, fallback={"output": {"text": "sorry"}}),
         node("out", "output", mapping={"t": "{{ nodes.call.output.text }}"})],
        [edge("trigger", "call"), edge("call", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.outputs == {"t": "sorry"}
    assert run.steps.get(node_id="call").error["retryable"] is True


def test_cancel_mid_run_stops_queued_steps(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("slow", script={"responses": [{"text": "x", "delay_ms": 1500}]}),
         scripted_llm("next"), node("out", "output")],
        [edge("trigger", "slow"), edge("slow", "next"), edge("next", "out")],
    ))  # fmt: skip
    run = start(flow)
    import time

    time.sleep(0.4)
    assert engine.run_cancel(run.pk)
    run = wait_run(run)
    assert run.status == RunStatus.CANCELLED
    time.sleep(1.5)  # the slow step finishes on the worker, and must change nothing
    assert statuses(run) == {
        "trigger": "succeeded",
        "slow": "cancelled",
        "next": "cancelled",
        "out": "cancelled",
    }
    assert not engine.run_cancel(run.pk)  # cancelling twice is a no-op


def test_a_viewer_role_exists_for_completeness():
    assert Role.VIEWER == "viewer"


def test_a_missing_input_is_a_clear_step_error(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("t", "transform", mapping={"id": "{{ input.ticket_id }}"}),
         node("out", "output")],
        [edge("trigger", "t"), edge("t", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow, {}))
    assert run.error == {"node": "t", "message": "undefined in expression: input.ticket_id has no value"}


def test_a_prompt_that_is_one_expression_is_still_text_and_items_is_a_field(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("ask", "{{ input }}", script={"responses": ["ok"]}),
         node("count", "transform", mapping={"n": "{{ input.items | length }}"}), node("out", "output")],
        [edge("trigger", "ask"), edge("ask", "count"), edge("count", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow, {"items": [1, 2, 3]}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.steps.get(node_id="ask").inputs == {"prompt": '{"items": [1, 2, 3]}'}
    assert run.steps.get(node_id="count").output == {"n": 3}
