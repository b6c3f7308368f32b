"""Runs, model calls and tool calls in the audit log: recorded by the run's own transactions as
pending entries, chained within seconds by the beat job, verifiable like every other entry."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connections
from django.test import Client

from flows.models import StepRun
from studio.governance.audit import (
    audit_append,
    audit_chain_pending,
    audit_later,
    audit_pending_count,
    audit_verify,
    json_digest,
)
from studio.governance.models import AuditEntry, AuditPending
from studio.governance.tasks import audit_chain_task
from studio.tenants.roles import Role
from tests.conftest import wait_for
from tests.factories import PASSWORD, make_loopback_tenant, make_member
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, wait_run
from tests.flows.receiver import Receiver, json_answer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


@pytest.fixture
def tenant():
    return make_loopback_tenant("Audited")


@pytest.fixture
def receiver():
    with Receiver() as server:
        server.on("/tickets", json_answer({"id": "T-1"}))
        yield server


def pending(tenant) -> list[dict]:
    rows = AuditPending.objects.filter(tenant=tenant).order_by("id")
    return [{"action": p.action, "actor": p.actor, "target": p.target, **json.loads(p.data)} for p in rows]


def model_then_tool_flow(tenant, receiver, **model_config):
    answer = {"text": "a summary", "tokens_in": 30, "tokens_out": 7}
    return published_flow(tenant, graph(
        [node("trigger", "trigger"),
         scripted_llm("ask", script={"responses": [answer]}, **model_config),
         node("file", "http", method="POST", url=receiver.url("/tickets"), body={"s": "{{ nodes.ask.output.text }}"}),
         node("out", "output", mapping={"id": "{{ nodes.file.output.body.id }}"})],
        [edge("trigger", "ask"), edge("ask", "file"), edge("file", "out")],
    ), capabilities=["http:127.0.0.1"])  # fmt: skip


def test_a_run_records_its_start_its_calls_and_its_end_and_they_chain_verifiably(tenant, receiver):
    owner = make_member(tenant, Role.OWNER, username="olga")
    audit_append(tenant_id=tenant.pk, actor="olga", action="settings.changed", target="settings:x")
    flow = model_then_tool_flow(tenant, receiver)
    run = wait_run(start(flow, {"ticket": 7}, user=owner))
    assert run.status == "succeeded", run.error
    ask, file = StepRun.objects.get(run=run, node_id="ask"), StepRun.objects.get(run=run, node_id="file")

    recorded = pending(tenant)
    assert [(e["action"], e["target"]) for e in recorded] == [
        ("run.started", f"run:{run.pk}"), ("model.call", f"run:{run.pk}/ask"),
        ("tool.call", f"run:{run.pk}/file"), ("run.ended", f"run:{run.pk}"),
    ]  # fmt: skip
    started, model, tool, ended = recorded
    assert started["actor"] == "olga" and started["trigger"] == "api"
    assert started["inputs_sha256"] == json_digest({"ticket": 7})
    assert model["actor"] == "system:engine"
    assert (model["model"], model["tokens_in"], model["tokens_out"], model["outcome"]) == (
        "claude-haiku-4-5", 30, 7, "ok")  # fmt: skip
    assert model["inputs_sha256"] == json_digest(ask.inputs) and model["output_sha256"] == json_digest(
        ask.output
    )
    assert (
        tool["idempotency_key"]
        == file.idempotency_key
        == receiver.calls("/tickets")[0].headers["idempotency-key"]
    )
    assert tool["output_sha256"] == json_digest(file.output) and "model" not in tool
    assert (ended["status"], ended["tokens_in"], ended["outputs_sha256"]) == (
        "succeeded",
        30,
        json_digest(run.outputs),
    )
    assert "a summary" not in json.dumps(recorded)  # digests, not the text

    assert audit_chain_pending().entries == 4
    assert audit_pending_count(tenant_id=tenant.pk) == 0
    chain = list(AuditEntry.objects.filter(tenant=tenant).order_by("seq"))
    assert [e.action for e in chain] == [
        "settings.changed", "flow.published", "run.started", "model.call", "tool.call", "run.ended",
    ]  # fmt: skip
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5, 6]
    verified = audit_verify(tenant_id=tenant.pk)
    assert verified.ok and verified.entries == 6


def test_every_attempt_is_recorded_and_a_refused_call_is_not_a_call(tenant, receiver):
    flaky = {"responses": [{"text": "ok", "fail": "server_error", "fail_attempts": 1}]}
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("call", script=flaky, retry={"max_attempts": 2, "backoff_s": 0.05}),
         node("out", "output")],
        [edge("trigger", "call"), edge("call", "out")],
    ))  # fmt: skip
    wait_run(start(flow))
    calls = [e for e in pending(tenant) if e["action"] == "model.call"]
    assert [(c["attempt"], c["outcome"]) for c in calls] == [(1, "error"), (2, "ok")]
    assert "scripted" in calls[0]["error"]

    refused = published_flow(tenant, graph(  # the flow was not granted the receiver's host
        [node("trigger", "trigger"), node("file", "http", method="POST", url=receiver.url("/tickets"), body={})],
        [edge("trigger", "file")],
    ), name="not granted")  # fmt: skip
    run = wait_run(start(refused))
    assert run.status == "failed"
    actions = [e["action"] for e in pending(tenant) if e["target"].startswith(f"run:{run.pk}")]
    assert actions == ["run.started", "run.ended"]  # no tool.call: nothing was sent
    assert AuditEntry.objects.filter(tenant=tenant, action="capability.refused").exists()
    assert receiver.calls("/tickets") == []


def test_a_router_deciding_by_its_rules_calls_no_model(tenant):
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("route", "router", mode="rules", classes=[{"id": "refund"}, {"id": "other"}],
              rules=[{"class": "refund", "when": "'money' in input.text"}], default_class="other"),
         node("r", "output", mapping={"c": "refund"}), node("o", "output", mapping={"c": "other"})],
        [edge("trigger", "route"), edge("route", "r", "refund"), edge("route", "o", "other")],
    ))  # fmt: skip
    run = wait_run(start(flow, {"text": "my money back"}))
    assert run.outputs == {"c": "refund"}, run.error
    assert [e["action"] for e in pending(tenant)] == ["run.started", "run.ended"]


def test_chaining_and_appending_at_once_keep_one_unbroken_chain(tenant):
    flow = published_flow(tenant, graph([node("t", "trigger"), node("o", "output")], [edge("t", "o")]))
    for _ in range(30):
        start(flow)  # inline: two pending entries each
    assert audit_pending_count(tenant_id=tenant.pk) == 60
    errors: list[Exception] = []

    def chain() -> None:
        try:
            while audit_chain_pending(batch=7, tenant_id=tenant.pk).entries:
                pass
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def append() -> None:
        try:
            for n in range(10):
                audit_append(
                    tenant_id=tenant.pk, actor="admin", action="settings.changed", target=f"settings:{n}"
                )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=chain),
        threading.Thread(target=chain),
        threading.Thread(target=append),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert audit_pending_count(tenant_id=tenant.pk) == 0
    verified = audit_verify(tenant_id=tenant.pk)
    assert verified.ok and verified.entries == 71  # with the flow's publishing


def test_the_beat_job_chains_on_a_worker_and_the_page_says_what_waits(tenant, settings):
    assert settings.CELERY_BEAT_SCHEDULE["audit-chain"]["task"] == "governance.audit_chain"
    owner = make_member(tenant, Role.OWNER)
    flow = published_flow(tenant, graph([node("t", "trigger"), node("o", "output")], [edge("t", "o")]))
    start(flow)
    page = Client()
    assert page.login(username=owner.username, password=PASSWORD)
    assert 'data-pending="2"' in page.get("/settings/audit/").content.decode()

    audit_chain_task.delay()
    wait_for(
        lambda: audit_pending_count(tenant_id=tenant.pk) == 0, timeout=30, what="the worker chained them"
    )
    actions = list(AuditEntry.objects.filter(tenant=tenant).order_by("seq").values_list("action", flat=True))
    assert actions == ["flow.published", "run.started", "run.ended"]
    html = page.get("/settings/audit/").content.decode()
    assert "data-pending" not in html and "run.started" in html

    start(flow)  # verifying chains what waits first
    verified = page.post("/settings/audit/", follow=True).content.decode()
    assert "The chain holds: 5 entries checked" in verified


def test_the_free_text_of_an_entry_is_redacted_and_the_rest_kept_as_recorded():
    row = audit_later(tenant_id=1, actor="system:engine", action="tool.call", target="run:1/call",
                      data={"error": "refused for bob@example.com", "node": "call", "run": 1})  # fmt: skip
    assert json.loads(row[-1]) == {"error": "refused for [email]", "node": "call", "run": 1}
