"""Node types that reach outside (HTTP, agents, self-hosted models), guardrails, child runs,
timeouts, idempotent effects — on the real workers, against a local HTTP receiver."""

from __future__ import annotations

import time

import pytest

from flows import engine
from flows.models import Run, RunStatus, StepRun
from flows.tasks import step_execute_task
from studio.governance.models import AuditEntry
from tests.factories import make_loopback_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, statuses, wait_run
from tests.flows.receiver import Receiver, chat_completion, json_answer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]
LOCAL = ["http:127.0.0.1"]


@pytest.fixture
def tenant():
    return make_loopback_tenant("Nodes")


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def http_flow(tenant, url: str, *, capabilities=LOCAL, **config):
    return published_flow(tenant, graph(
        [node("trigger", "trigger"), node("call", "http", method="POST", url=url, body={"ticket": "{{ input.id }}"},
                                          **config),
         node("out", "output", mapping={"status": "{{ nodes.call.output.status }}",
                                        "reply": "{{ nodes.call.output.body }}"})],
        [edge("trigger", "call"), edge("call", "out")],
    ), capabilities=capabilities)  # fmt: skip


def test_an_http_step_sends_its_idempotency_key_and_rendered_body(tenant, receiver):
    receiver.on("/tickets", json_answer({"ok": True}))
    run = wait_run(start(http_flow(tenant, receiver.url("/tickets")), {"id": 7}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"status": 200, "reply": {"ok": True}}
    [request] = receiver.calls("/tickets")
    assert request.body == {"ticket": 7}
    assert request.headers["idempotency-key"] == run.steps.get(node_id="call").idempotency_key


def test_a_host_not_granted_to_the_flow_is_refused_before_any_request(tenant, receiver):
    receiver.on("/tickets", json_answer({"ok": True}))
    run = wait_run(
        start(http_flow(tenant, receiver.url("/tickets"), capabilities=["http:api.example.com"]), {"id": 1})
    )
    assert run.status == RunStatus.FAILED
    assert run.error == {
        "node": "call",
        "message": "capability 'http:127.0.0.1' is not granted to this flow (admins grant it in Settings, Flow access)",
    }
    assert receiver.calls("/tickets") == []
    refusal = AuditEntry.objects.get(tenant=tenant, action="capability.refused")
    assert refusal.target == f"run:{run.pk}" and refusal.details["refused"] == "http:127.0.0.1"


def test_private_addresses_are_refused_unless_the_tenant_allows_them(tenant, receiver):
    tenant.settings = {}
    tenant.save()
    receiver.on("/tickets", json_answer({"ok": True}))
    run = wait_run(start(http_flow(tenant, receiver.url("/tickets")), {"id": 1}))
    assert run.status == RunStatus.FAILED
    assert run.error["message"] == "host 127.0.0.1 resolves to loopback address 127.0.0.1"
    assert receiver.calls("/tickets") == []


def test_a_step_delivered_twice_makes_its_effect_once(tenant, receiver):
    receiver.on("/charge", json_answer({"charged": True}, delay_s=0.3))
    run = start(http_flow(tenant, receiver.url("/charge")), {"id": 1})
    step = run.steps.get(node_id="call")
    for _ in range(4):  # the broker redelivering the same message, while the first is running
        step_execute_task.delay(step.pk)
    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED
    step_execute_task.delay(step.pk)  # and once more after it finished
    time.sleep(0.5)
    assert len(receiver.calls("/charge")) == 1
    assert receiver.keys("/charge") == {step.idempotency_key}


def test_a_step_timeout_is_enforced_by_the_client(tenant, receiver):
    receiver.on("/slow", json_answer({}, delay_s=2))
    run = wait_run(start(http_flow(tenant, receiver.url("/slow"), timeout_s=0.5), {"id": 1}))
    assert run.status == RunStatus.FAILED
    assert "timed out" in run.error["message"] or "timeout" in run.error["message"].lower()
    step = run.steps.get(node_id="call")
    assert step.latency_ms < 1500  # gave up at its 0.5 s timeout, not after the server's 2 s


def test_retry_from_failed_reuses_earlier_outputs_and_repeats_no_model_call(tenant, receiver):
    receiver.on("/v1/chat/completions", chat_completion("drafted reply"))
    state = {"ok": False}
    receiver.on("/send", lambda r: (200, {"sent": True}) if state["ok"] else (400, {"error": "mailbox full"}))
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("draft", "llm", provider="openai_compatible", base_url=receiver.url("/v1"), model="local-model",
              prompt="Draft a reply"),
         node("send", "http", method="POST", url=receiver.url("/send"), body={"text": "{{ nodes.draft.output.text }}"}),
         node("out", "output", mapping={"sent": "{{ nodes.send.output.body.sent }}"})],
        [edge("trigger", "draft"), edge("draft", "send"), edge("send", "out")],
    ), capabilities=LOCAL)  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.FAILED and run.error["node"] == "send"
    state["ok"] = True
    assert engine.run_retry(run.pk)
    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"sent": True}
    assert len(receiver.calls("/v1/chat/completions")) == 1  # the model was not asked again
    assert receiver.calls("/send")[-1].body == {"text": "drafted reply"}


def test_an_agent_calls_its_tools_and_records_each_call(tenant, receiver):
    receiver.on("/orders", lambda r: (200, {"order": r.body["id"], "status": "shipped"}))
    script = {"responses": [
        {"tool_calls": [{"name": "order_status", "input": {"id": "A-17"}}]},
        {"text": "Your order A-17 has shipped."},
    ]}  # fmt: skip
    tool = {"name": "order_status", "description": "Look up an order",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
            "http": {"method": "POST", "url": receiver.url("/orders"), "body": {"id": "{{ args.id }}"}}}  # fmt: skip
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("agent", "agent", provider="scripted", model="claude-haiku-4-5", prompt="Where is my order?",
              tools=[tool], script=script),
         node("out", "output", mapping={"answer": "{{ nodes.agent.output.text }}"})],
        [edge("trigger", "agent"), edge("agent", "out")],
    ), capabilities=LOCAL)  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"answer": "Your order A-17 has shipped."}
    output = run.steps.get(node_id="agent").output
    assert output["iterations"] == 2
    assert output["tool_calls"] == [{"name": "order_status", "input": {"id": "A-17"},
                                     "output": {"status": 200, "body": {"order": "A-17", "status": "shipped"},
                                                "headers": output["tool_calls"][0]["output"]["headers"]}}]  # fmt: skip


def test_an_agent_tool_on_a_host_not_granted_stops_the_agent(tenant, receiver):
    tool = {"name": "leak", "description": "x", "http": {"url": receiver.url("/leak")}}
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("agent", "agent", provider="scripted", model="m", prompt="go", tools=[tool],
              script={"responses": [{"tool_calls": [{"name": "leak", "input": {}}]}, "done"]}),
         node("out", "output")],
        [edge("trigger", "agent"), edge("agent", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.FAILED
    assert "not granted" in run.error["message"]
    assert receiver.calls("/leak") == []


def test_a_tool_error_that_merely_mentions_a_capability_goes_back_to_the_model(tenant, receiver):
    """Only a refused capability stops an agent: recognised by its type, not by its wording."""
    body = {"level": "{{ args.capability.level }}"}  # the model sends no "capability": a template error
    http = {"method": "POST", "url": receiver.url("/lookup"), "body": body}
    tool = {"name": "lookup", "description": "x", "http": http}
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("agent", "agent", provider="scripted", model="m", prompt="go", tools=[tool],
              script={"responses": [{"tool_calls": [{"name": "lookup", "input": {}}]}, "I could not look it up."]}),
         node("out", "output", mapping={"answer": "{{ nodes.agent.output.text }}"})],
        [edge("trigger", "agent"), edge("agent", "out")],
    ), capabilities=LOCAL)  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.SUCCEEDED, run.error
    [call] = run.steps.get(node_id="agent").output["tool_calls"]
    assert "capability" in call["error"] and receiver.calls("/lookup") == []
    assert run.outputs == {"answer": "I could not look it up."}


def test_a_guardrail_blocks_pii_and_out_of_bounds_prices(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("check", "guardrail", value="{{ input }}", required=["sku"], pii=["email", "card"],
              bounds=[{"path": "price", "min": 1, "max": 500}]),
         node("ok", "output", mapping={"verdict": "pass"}),
         node("stop", "output", mapping={"verdict": "blocked", "why": "{{ nodes.check.output.violations }}"})],
        [edge("trigger", "check"), edge("check", "ok", "pass"), edge("check", "stop", "blocked")],
    ))  # fmt: skip
    assert wait_run(start(flow, {"sku": "A1", "price": 20})).outputs == {"verdict": "pass"}
    blocked = wait_run(start(flow, {"sku": "A1", "price": 900, "note": "mail bob@example.com"})).outputs
    assert blocked["verdict"] == "blocked"
    messages = [v["message"] for v in blocked["why"]]
    assert messages == ["price = 900 is above 500", "contains email data"]


def test_a_template_escape_attempt_fails_the_step_with_a_clear_error(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("t", "transform", template="{{ ''.__class__.__mro__[1].__subclasses__() }}"),
         node("out", "output")],
        [edge("trigger", "t"), edge("t", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.FAILED
    assert run.error == {"node": "t", "message": "refused by the template sandbox: access to attribute '__class__' "
                                                 "of 'str' object is unsafe."}  # fmt: skip


def child_flow(tenant, receiver=None):
    if receiver is None:
        nodes = [node("trigger", "trigger"), node("double", "transform", mapping={"v": "{{ input.n * 2 }}"}),
                 node("out", "output", mapping={"v": "{{ nodes.double.output.v }}"})]  # fmt: skip
    else:
        nodes = [node("trigger", "trigger"),
                 node("double", "http", method="POST", url=receiver.url("/work"), body={"n": "{{ input.n }}"}),
                 node("out", "output", mapping={"v": "{{ nodes.double.output.body.v }}"})]  # fmt: skip
    return published_flow(tenant, graph(nodes, [edge("trigger", "double"), edge("double", "out")]),
                          name="child", capabilities=LOCAL)  # fmt: skip


def test_a_subflow_runs_a_pinned_version_as_a_child_run(tenant):
    child = child_flow(tenant)
    parent = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("sub", "subflow", flow={"id": child.pk, "version": 1},
                                          inputs={"n": "{{ input.n }}"}),
         node("out", "output", mapping={"result": "{{ nodes.sub.output.v }}"})],
        [edge("trigger", "sub"), edge("sub", "out")],
    ))  # fmt: skip
    run = wait_run(start(parent, {"n": 21}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"result": 42}
    [child_run] = Run.objects.filter(parent_step__run=run)
    assert (child_run.flow_id, child_run.version.number, child_run.status) == (child.pk, 1, "succeeded")
    assert child_run.started_at is not None and child_run.started_at <= child_run.finished_at  # it was saved


def test_a_map_over_1000_items_respects_its_concurrency_and_keeps_order(tenant, receiver):
    receiver.on("/work", lambda r: (time.sleep(0.01), (200, {"v": int(r.body["n"]) * 2}))[1])
    child = child_flow(tenant, receiver)
    parent = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("each", "map", items="input.numbers", flow={"id": child.pk, "version": 1}, concurrency=8,
              item_input={"n": "{{ item }}"}),
         node("out", "output", mapping={"values": "{{ nodes.each.output | map(attribute='v') | list }}"})],
        [edge("trigger", "each"), edge("each", "out")],
    ))  # fmt: skip
    run = wait_run(start(parent, {"numbers": list(range(1000))}), timeout=240)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"values": [n * 2 for n in range(1000)]}
    assert len(receiver.calls("/work")) == 1000
    assert 1 < receiver.max_in_flight <= 8
    assert Run.objects.filter(parent_step__run=run, status="succeeded").count() == 1000


def test_a_failing_map_item_fails_the_map_and_names_the_item(tenant, receiver):
    receiver.on("/work", lambda r: (500, {}) if r.body["n"] == 3 else (200, {"v": 1}))
    child = child_flow(tenant, receiver)
    parent = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("each", "map", items="input.numbers", flow={"id": child.pk, "version": 1}, concurrency=2,
              item_input={"n": "{{ item }}"}),
         node("out", "output")],
        [edge("trigger", "each"), edge("each", "out")],
    ))  # fmt: skip
    run = wait_run(start(parent, {"numbers": [1, 2, 3, 4, 5, 6]}), timeout=60)
    assert run.status == RunStatus.FAILED
    assert run.error["node"] == "each" and run.error["message"].startswith(
        "item 2 failed"
    )  # 0-based: the third item
    assert StepRun.objects.get(run=run, node_id="each").status == "failed"
    assert statuses(run)["out"] == "cancelled"
    children = Run.objects.filter(parent_step__run=run)
    wait_for_children = time.monotonic() + 10
    while children.exclude(status__in=["succeeded", "failed", "cancelled"]).exists():
        assert time.monotonic() < wait_for_children, "children left running after the map failed"
        time.sleep(0.05)
    assert children.filter(status="cancelled").exists()


def test_scripted_default_answers_need_no_script(tenant):
    flow = published_flow(tenant, graph([node("trigger", "trigger"), scripted_llm("ask", "hello"), node("o", "output")],
                                        [edge("trigger", "ask"), edge("ask", "o")]))  # fmt: skip
    assert wait_run(start(flow)).status == RunStatus.SUCCEEDED
