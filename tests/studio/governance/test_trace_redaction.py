"""Redaction applied to run traces: what steps record for people to read (recorded inputs, error
messages) goes through the tenant's trace rules; the data later steps and API clients use does
not."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from flows.models import StepRun
from studio.governance import redaction
from studio.tenants.roles import Role
from tests.factories import PASSWORD, make_loopback_tenant, make_member
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, wait_run
from tests.flows.receiver import Receiver, json_answer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

EMAIL = "ada.lovelace@example.com"


@pytest.fixture
def tenant():
    return make_loopback_tenant("Private")


def reply_flow(tenant, receiver):
    return published_flow(tenant, graph(
        [node("trigger", "trigger"),
         scripted_llm("draft", "Write to {{ input.email }} about the refund"),
         node("send", "http", method="POST", url=receiver.url("/mail"), body={"to": "{{ input.email }}"}),
         node("out", "output", mapping={"draft": "{{ nodes.draft.output.text }}"})],
        [edge("trigger", "draft"), edge("draft", "send"), edge("send", "out")],
    ), capabilities=["http:127.0.0.1"])  # fmt: skip


def test_recorded_inputs_and_errors_are_redacted_and_the_data_is_not(tenant):
    with Receiver() as receiver:
        receiver.on("/mail", json_answer({"error": f"mailbox {EMAIL} is full"}, status=422))
        run = wait_run(start(reply_flow(tenant, receiver), {"email": EMAIL}))
        sent = receiver.calls("/mail")[0].body
    assert run.status == "failed"
    draft, send = StepRun.objects.get(run=run, node_id="draft"), StepRun.objects.get(run=run, node_id="send")
    assert draft.inputs["prompt"] == "Write to [email] about the refund"
    assert EMAIL in draft.output["text"]  # the model got the real prompt; its answer is data
    assert sent == {"to": EMAIL}  # so did the receiver
    assert EMAIL not in str(send.inputs) and EMAIL not in send.error["message"]
    assert "mailbox [email] is full" in send.error["message"]
    assert EMAIL not in run.error["message"]
    assert run.inputs == {"email": EMAIL}  # a run's inputs are data: later steps read them


def test_a_tenant_chooses_the_rules_and_may_turn_them_off(tenant):
    redaction.trace_rules_set(tenant=tenant, names=[], actor="test")
    with Receiver() as receiver:
        receiver.on("/mail", json_answer({"ok": True}))
        run = wait_run(start(reply_flow(tenant, receiver), {"email": EMAIL}))
    assert run.status == "succeeded", run.error
    assert (
        StepRun.objects.get(run=run, node_id="draft").inputs["prompt"] == f"Write to {EMAIL} about the refund"
    )
    with pytest.raises(ValidationError) as unknown:
        redaction.trace_rules_set(tenant=tenant, names=["email", "nope"], actor="test")
    assert unknown.value.message_dict == {"traces": ["unknown rule(s): nope"]}


def test_the_redaction_page_sets_them_and_a_rule_in_use_cannot_be_removed(tenant):
    owner = make_member(tenant, Role.OWNER)
    page = Client()
    assert page.login(username=owner.username, password=PASSWORD)
    html = page.get("/settings/redaction/").content.decode()
    assert 'name="traces" value="email" checked' in html  # the built-in rules by default

    page.post("/settings/redaction/", {"action": "add", "name": "order-id", "pattern": r"\bORD-\d{6}\b",
                                        "replacement": "[order]"})  # fmt: skip
    saved = page.post(
        "/settings/redaction/", {"action": "traces", "traces": ["email", "order-id"]}, follow=True
    )
    assert "Run traces apply email, order-id." in saved.content.decode()
    tenant.refresh_from_db()
    assert redaction.trace_rule_names(tenant.settings) == ["email", "order-id"]
    removed = page.post("/settings/redaction/", {"action": "remove", "name": "order-id"}, follow=True)
    assert "order-id is applied by run traces: untick it there first" in removed.content.decode()

    cleared = page.post("/settings/redaction/", {"action": "traces"}, follow=True)
    assert "Run traces are not redacted." in cleared.content.decode()
