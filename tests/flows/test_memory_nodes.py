"""memory_write / memory_search nodes and the agent's memory tool, on the real workers: each
searches only its run's tenant memory."""

from __future__ import annotations

import pytest

from flows.models import RunStatus
from studio.memory import services as memory
from studio.memory.models import MemoryItem
from tests.factories import make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, start, wait_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def write_flow(tenant):
    return published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("remember", "memory_write", namespace="notes", content="{{ input.note }}",
              subject="{{ input.customer }}", metadata={"channel": "{{ input.channel }}"}, ttl_s=3600),
         node("out", "output", mapping={"id": "{{ nodes.remember.output.id }}",
                                        "stored": "{{ nodes.remember.output.content }}"})],
        [edge("trigger", "remember"), edge("remember", "out")],
    ), name="write")  # fmt: skip


def search_flow(tenant, **config):
    return published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("recall", "memory_search", namespace="notes", query="{{ input.q }}", k=3, **config),
         node("out", "output", mapping={"hits": "{{ nodes.recall.output.results }}",
                                        "count": "{{ nodes.recall.output.count }}"})],
        [edge("trigger", "recall"), edge("recall", "out")],
    ), name="search")  # fmt: skip


def test_a_flow_writes_memory_redacted_and_another_flow_finds_it():
    tenant = make_tenant("Writer")
    run = wait_run(start(write_flow(tenant), {"note": "Prefers calls at +1 415 555 0100 in the morning",
                                              "customer": "c-7", "channel": "phone"}))  # fmt: skip
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs["stored"] == "Prefers calls at [phone] in the morning"
    item = MemoryItem.objects.get(pk=run.outputs["id"])
    assert (item.subject, item.metadata["channel"], item.expires_at is not None) == ("c-7", "phone", True)
    assert item.source == f"run:{run.pk}/step:remember"
    assert item.dedupe_key == run.steps.get(node_id="remember").idempotency_key

    found = wait_run(start(search_flow(tenant, filter={"channel": "phone"}), {"q": "calls in the morning"}))
    assert found.status == RunStatus.SUCCEEDED, found.error
    assert found.outputs["count"] == 1
    assert found.outputs["hits"][0]["content"] == "Prefers calls at [phone] in the morning"


def test_a_search_node_never_sees_another_tenants_memory():
    owner, other = make_tenant("Owner"), make_tenant("Other")
    memory.memory_add_one(tenant=owner, namespace="notes", content="the launch code is tangerine")
    run = wait_run(start(search_flow(other), {"q": "the launch code is tangerine"}))
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"hits": [], "count": 0}


def test_an_empty_query_fails_the_step_with_a_message_naming_it():
    tenant = make_tenant()
    run = wait_run(start(search_flow(tenant), {"q": "  "}))
    assert run.status == RunStatus.FAILED
    assert run.error == {"node": "recall", "message": "memory search: query: must not be empty"}


def test_an_agent_uses_memory_as_a_tool_within_its_tenant():
    tenant, other = make_tenant("Agent"), make_tenant("Elsewhere")
    memory.memory_add_one(tenant=tenant, namespace="kb", content="Orders ship from Lisbon on Mondays")
    memory.memory_add_one(tenant=other, namespace="kb", content="Orders ship from Oslo on Fridays")
    script = {"responses": [
        {"tool_calls": [{"name": "recall", "input": {"query": "when do orders ship"}}]},
        {"text": "They ship on Mondays."},
    ]}  # fmt: skip
    tool = {
        "name": "recall",
        "description": "Search the knowledge base",
        "memory": {"namespace": "kb", "k": 5},
    }
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("agent", "agent", provider="scripted", model="claude-haiku-4-5", prompt="When do orders ship?",
              tools=[tool], script=script),
         node("out", "output", mapping={"answer": "{{ nodes.agent.output.text }}"})],
        [edge("trigger", "agent"), edge("agent", "out")],
    ))  # fmt: skip
    run = wait_run(start(flow))
    assert run.status == RunStatus.SUCCEEDED, run.error
    [call] = run.steps.get(node_id="agent").output["tool_calls"]
    assert call["name"] == "recall" and call["input"] == {"query": "when do orders ship"}
    assert [r["content"] for r in call["output"]["results"]] == ["Orders ship from Lisbon on Mondays"]


def test_a_write_step_executed_twice_stores_one_item():
    from flows import engine

    tenant = make_tenant()
    run = wait_run(start(write_flow(tenant), {"note": "remember me", "customer": "c-1", "channel": "chat"}))
    step = run.steps.get(node_id="remember")
    engine.step_execute(step.pk)  # a redelivered task: the claim refuses it, nothing is written
    assert MemoryItem.objects.filter(tenant=tenant).count() == 1
