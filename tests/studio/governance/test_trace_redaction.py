"""Redaction applied to run traces: what steps record for people to read (recorded inputs, error
messages) goes through the tenant's trace rules before it is stored; the data later steps and API
clients use (inputs, outputs) is stored whole and goes through them where people read it."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from flows.models import Run, StepRun
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


def test_people_see_runs_data_through_the_rules_and_api_keys_see_it_whole(tenant, api):
    """The run's inputs and outputs and its steps' outputs are data, stored whole; what a person
    reads of them (trace page, run API and run list in a session, the run socket's snapshot) goes
    through the tenant's trace rules. An API key, the system that started the run, gets them whole."""
    from flows.consumers import run_snapshot_for

    with Receiver() as receiver:
        receiver.on("/mail", json_answer({"sent": f"to {EMAIL}"}))
        flow = reply_flow(tenant, receiver)
        run = wait_run(start(flow, {"email": EMAIL}))
    assert run.status == "succeeded", run.error
    assert run.inputs == {"email": EMAIL} and EMAIL in run.outputs["draft"]  # stored as it came

    system = api(tenant, Role.VIEWER)
    whole = system.get(f"/api/v1/runs/{run.pk}/").json()
    assert whole["inputs"] == {"email": EMAIL} and EMAIL in whole["outputs"]["draft"]
    steps = {step["node_id"]: step for step in whole["steps"]}
    assert EMAIL in steps["draft"]["output"]["text"] and steps["send"]["output"]["body"] == {
        "sent": f"to {EMAIL}"
    }
    assert system.get(f"/api/v1/flows/{flow.pk}/runs/").json()["results"][0]["inputs"] == {"email": EMAIL}

    person = make_member(tenant, Role.VIEWER)
    session = Client()
    session.force_login(person)
    shown = session.get(f"/api/v1/runs/{run.pk}/")
    assert shown.status_code == 200 and EMAIL not in shown.content.decode()
    body = shown.json()
    assert body["inputs"] == {"email": "[email]"} and "[email]" in body["outputs"]["draft"]
    steps = {step["node_id"]: step for step in body["steps"]}
    assert (
        steps["send"]["output"]["body"] == {"sent": "to [email]"}
        and "[email]" in steps["draft"]["output"]["text"]
    )
    listed = session.get(f"/api/v1/flows/{flow.pk}/runs/").json()["results"][0]
    assert listed["inputs"] == {"email": "[email]"}
    page = session.get(f"/runs/{run.pk}/").content.decode()
    assert EMAIL not in page and "[email]" in page
    assert "shown through the trace redaction rules email, card, phone" in page  # says why
    assert EMAIL not in json.dumps(run_snapshot_for(person, run.pk))

    redaction.trace_rules_set(tenant=tenant, names=[], actor="test")  # the tenant turns them off
    assert session.get(f"/api/v1/runs/{run.pk}/").json()["inputs"] == {"email": EMAIL}
    assert "data-redacted-by" not in session.get(f"/runs/{run.pk}/").content.decode()
    assert Run.objects.get(pk=run.pk).inputs == {"email": EMAIL}  # nothing stored changed


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
