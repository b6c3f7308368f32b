"""The flow editor in a real Chromium against the live server and real workers: build a flow
from the palette, save, reload, break it, publish it, run it and watch it live."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from flows import services
from flows.models import Flow, Run
from studio.tenants.roles import Role
from tests.browser.test_pages import log_in
from tests.conftest import ARTIFACTS
from tests.factories import make_member, make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def node(page, node_id: str):
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def drag_from_palette(page, node_type: str, x: int, y: int) -> None:
    page.locator(f'.palette [data-node-type="{node_type}"]').drag_to(
        page.locator(".react-flow__pane"), target_position={"x": x, "y": y}
    )


def connect(page, source: str, target: str, source_handle: str = "out", target_handle: str = "in") -> None:
    start = page.locator(f'.react-flow__handle[data-nodeid="{source}"][data-handleid="{source_handle}"]')
    end = page.locator(f'.react-flow__handle[data-nodeid="{target}"][data-handleid="{target_handle}"]')
    a, b = start.bounding_box(), end.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=8)
    page.mouse.up()


def save(page) -> None:
    page.keyboard.press("Control+s")
    expect(page.locator(".save-state")).to_have_attribute("data-dirty", "false")
    expect(page.locator(".save-state")).to_contain_text("Saved")


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name))


@pytest.fixture
def builder():
    tenant = make_tenant("Acme Support")
    return tenant, make_member(tenant, Role.BUILDER, username="builder")


def test_a_builder_composes_saves_publishes_and_runs_a_flow(page, live_server_url, builder, celery_worker):
    _tenant, user = builder
    log_in(page, live_server_url, user.username)
    page.wait_for_url("**/flows/")
    page.get_by_label("New flow name").fill("Greeter")
    page.get_by_role("button", name="Create flow").click()
    page.wait_for_url("**/flows/*/edit/")
    flow = Flow.objects.get(name="Greeter")

    # A new flow starts with a trigger; replace it with one from the palette.
    expect(node(page, "trigger")).to_be_visible()
    node(page, "trigger").click()
    page.keyboard.press("Delete")
    expect(page.get_by_text("This flow is empty.")).to_be_visible()
    drag_from_palette(page, "trigger", 110, 200)
    drag_from_palette(page, "llm", 360, 200)
    drag_from_palette(page, "output", 610, 200)
    for node_id in ("trigger", "llm", "output"):
        expect(node(page, node_id)).to_be_visible()
    connect(page, "trigger", "llm")
    connect(page, "llm", "output")
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    # Invalid connections are refused: a self-loop, the same connection twice (cycles: Vitest).
    connect(page, "llm", "llm")
    connect(page, "trigger", "llm")
    expect(page.locator(".react-flow__edge")).to_have_count(2)

    node(page, "llm").click()
    page.locator("#cfg-llm-provider").select_option("scripted")
    prompt = page.locator("#cfg-llm-prompt")
    prompt.fill("Greet the caller. {{ inp")
    expect(page.get_by_role("listbox", name="Variables")).to_contain_text("input")
    prompt.fill("Greet the caller warmly.")
    expect(page.locator(".save-state")).to_have_attribute("data-dirty", "true")
    save(page)
    shot(page, "editor-built.png")

    flow.refresh_from_db()
    assert {n["id"]: n["type"] for n in flow.draft["nodes"]} == {
        "trigger": "trigger",
        "llm": "llm",
        "output": "output",
    }
    assert {(e["source"], e["target"]) for e in flow.draft["edges"]} == {
        ("trigger", "llm"),
        ("llm", "output"),
    }

    page.reload()
    expect(node(page, "llm")).to_be_visible()
    expect(page.locator(".react-flow__edge")).to_have_count(2)
    node(page, "llm").click()
    expect(page.locator("#cfg-llm-prompt")).to_have_value("Greet the caller warmly.")
    expect(page.locator("#cfg-llm-provider")).to_have_value("scripted")

    # Broken config: inline error at once, the server's problem on the node after saving.
    page.locator("#cfg-llm-prompt").fill("")
    expect(page.locator(".config-panel .field-error").first).to_be_visible()
    save(page)
    expect(node(page, "llm").locator(".fnode-problems")).to_be_visible()
    expect(page.get_by_role("tab", name="Problems (1)")).to_be_visible()
    shot(page, "editor-problem.png")
    page.get_by_role("tab", name="Problems (1)").click()
    page.locator(".problem-item").first.click()
    page.get_by_role("tab", name="Config").click()
    page.locator("#cfg-llm-prompt").fill("Greet the caller warmly.")
    save(page)
    expect(node(page, "llm").locator(".fnode-problems")).to_have_count(0)

    page.get_by_role("button", name="Publish…").click()
    page.get_by_role("dialog").get_by_label("Note").fill("first greeter")
    page.get_by_role("dialog").get_by_role("button", name="Publish").click()
    expect(page.locator(".badge")).to_have_text("v1 live")
    assert flow.versions.get().note == "first greeter"

    page.get_by_role("button", name="Run…").click()
    page.get_by_role("dialog").get_by_label("Version").select_option("1")
    page.get_by_role("button", name="Start run").click()
    for node_id in ("trigger", "llm", "output"):
        expect(node(page, node_id).locator(".fnode")).to_have_class(
            re.compile(r"\bstatus-succeeded\b"), timeout=30_000
        )
    expect(page.locator("[data-run-status]")).to_have_text("succeeded")
    node(page, "llm").click()
    page.get_by_role("tab", name="Config").click()
    expect(page.locator(".step-details")).to_contain_text("Latency")
    shot(page, "editor-run.png")
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator(".run-list li")).to_have_count(1)

    # Version history: compare with the draft, then restore a removed node.
    node(page, "output").click()
    page.keyboard.press("Delete")
    page.get_by_role("tab", name="Versions").click()
    page.get_by_role("button", name="View version 1").click()
    expect(page.locator(".diff-list")).to_contain_text("Removed in the draft: output")
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Restore version 1").click()
    expect(node(page, "output")).to_be_visible()
    expect(page.locator(".save-state")).to_have_attribute("data-dirty", "false")
    assert page.console_errors == []


def starter_flow(tenant, name: str) -> Flow:
    graph = {
        "schema": 1,
        "nodes": [
            {"id": "trigger", "type": "trigger", "position": {"x": 0, "y": 0}, "config": {"kind": "manual"}},
            {"id": "ask", "type": "llm", "position": {"x": 280, "y": 0},
             "config": {"provider": "scripted", "prompt": "Hello"}},
        ],
        "edges": [{"id": "e1", "source": "trigger", "sourceHandle": "out", "target": "ask", "targetHandle": "in"}],
    }  # fmt: skip
    return services.flow_create(tenant=tenant, name=name, graph=graph)


def test_undo_redo_copy_paste_and_a_stale_save(page, live_server_url, builder):
    tenant, user = builder
    first, second = starter_flow(tenant, "First"), starter_flow(tenant, "Second")
    log_in(page, live_server_url, user.username)
    page.wait_for_url("**/flows/")
    page.goto(f"{live_server_url}/flows/{first.pk}/edit/")
    expect(node(page, "ask")).to_be_visible()

    node(page, "ask").click()
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(node(page, "ask_2")).to_be_visible()
    page.keyboard.press("Control+z")
    expect(node(page, "ask_2")).to_have_count(0)
    page.keyboard.press("Control+Shift+z")
    expect(node(page, "ask_2")).to_be_visible()
    page.get_by_role("button", name="Undo").click()
    expect(node(page, "ask_2")).to_have_count(0)
    page.get_by_role("button", name="Redo").click()
    expect(node(page, "ask_2")).to_be_visible()
    page.keyboard.press("Control+d")  # duplicate the pasted node
    expect(node(page, "ask_3")).to_be_visible()
    # Keyboard alternative to dragging: Enter on a palette item adds it mid-view.
    page.locator('.palette [data-node-type="note"]').focus()
    page.keyboard.press("Enter")
    expect(node(page, "note")).to_be_visible()
    page.locator("#cfg-note-text").fill("Remember the refund policy")
    expect(node(page, "note")).to_contain_text("Remember the refund policy")
    node(page, "note").click()
    page.keyboard.press("Control+k")  # find a node and jump to it
    page.get_by_label("Node id, type or label").fill("ask_3")
    page.keyboard.press("Enter")
    expect(page.locator("#node-id-input")).to_have_value("ask_3")
    save(page)

    # Someone else saves the first flow; our next save is refused, nothing overwritten.
    first.refresh_from_db()
    services.draft_save(flow=first, graph=first.draft, revision=first.draft_revision)
    page.get_by_role("button", name="Auto-layout").click()
    page.keyboard.press("Control+s")
    expect(page.locator(".conflict-banner")).to_contain_text("Someone else saved")
    first.refresh_from_db()
    assert first.draft_revision == 3

    # Paste into another flow: leaving with unsaved changes asks first.
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.accept()))
    page.goto(f"{live_server_url}/flows/{second.pk}/edit/")
    assert dialogs == ["beforeunload"]
    expect(node(page, "ask")).to_be_visible()
    page.locator(".react-flow__pane").click(position={"x": 50, "y": 50})
    page.keyboard.press("Control+v")
    expect(node(page, "ask_2")).to_be_visible()
    shot(page, "editor-paste.png")
    save(page)
    second.refresh_from_db()
    assert sorted(n["id"] for n in second.draft["nodes"]) == ["ask", "ask_2", "trigger"]
    # The browser logs the refused save (409) itself; nothing else went wrong.
    assert [e for e in page.console_errors if "409 (Conflict)" not in e] == []


def test_the_flow_list_searches_creates_imports_duplicates_and_deletes(
    page, live_server_url, builder, tmp_path
):
    tenant, user = builder
    starter_flow(tenant, "Refund helper")
    starter_flow(tenant, "Weekly digest")
    log_in(page, live_server_url, user.username)
    page.wait_for_url("**/flows/")
    expect(page.locator(".flow-link")).to_have_count(2)
    page.get_by_label("Search flows").fill("refund")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".flow-link")).to_have_text(["Refund helper"])
    page.get_by_role("link", name="Clear").click()

    page.get_by_role("button", name="Duplicate Refund helper").click()
    expect(page.locator(".flow-link")).to_have_count(3)
    page.once("dialog", lambda d: d.dismiss())
    page.get_by_role("button", name="Delete Weekly digest").click()
    expect(page.locator(".flow-link")).to_have_count(3)
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Delete Weekly digest").click()
    expect(page.get_by_text("Deleted “Weekly digest”.")).to_be_visible()
    expect(page.locator(".flow-link")).to_have_count(2)
    shot(page, "flows-list.png")

    exported = tmp_path / "exported.json"
    exported.write_text(
        json.dumps(services.flow_export(flow=Flow.objects.get(name="Refund helper")) | {"name": "Imported"})
    )
    page.locator("#import-file").set_input_files(str(exported))
    page.wait_for_url("**/flows/*/edit/")
    expect(node(page, "ask")).to_be_visible()
    page.goto(f"{live_server_url}/flows/")

    page.get_by_role("button", name="Use template Summarize with an LLM").click()
    page.wait_for_url("**/flows/*/edit/")
    expect(node(page, "summarize")).to_be_visible()
    expect(page.locator(".flow-name")).to_have_text("Summarize with an LLM")
    page.get_by_role("button", name="Run…").click()  # the form comes from the trigger's input schema
    expect(page.get_by_role("dialog").get_by_label("Text to summarize")).to_be_visible()
    expect(page.get_by_role("button", name="Start run")).to_be_disabled()  # "text" is required
    page.get_by_role("dialog").get_by_label("Text to summarize").fill("A long text.")
    expect(page.get_by_role("button", name="Start run")).to_be_enabled()
    page.keyboard.press("Escape")
    shot(page, "editor-starter.png")
    assert page.console_errors == []


def test_a_big_flow_opens_in_overview_and_its_nodes_still_drag(page, live_server_url, builder):
    from studio.bench.editor import generated_graph

    tenant, user = builder
    flow = services.flow_create(tenant=tenant, name="Big", graph=generated_graph(1200))
    log_in(page, live_server_url, user.username)
    page.wait_for_url("**/flows/")
    page.goto(f"{live_server_url}/flows/{flow.pk}/edit/")
    expect(page.locator(".graph-sketch .sketch-nodes")).to_be_attached()  # zoomed out to fit: overview
    shot(page, "editor-overview.png")
    point = page.evaluate("window.__afsPickNode()")
    page.mouse.move(point["x"], point["y"])
    page.mouse.down()
    page.mouse.move(point["x"] + 60, point["y"] + 40, steps=5)
    page.mouse.up()
    moved = page.locator("#node-id-input").input_value()  # the dragged node is selected
    save(page)
    flow.refresh_from_db()
    before = {n["id"]: n["position"] for n in generated_graph(1200)["nodes"]}
    after = {n["id"]: n["position"] for n in flow.draft["nodes"]}
    assert after[moved] != before[moved]
    assert sum(after[i] != before[i] for i in before) == 1
    page.keyboard.press("Control+z")
    expect(page.locator(".save-state")).to_have_attribute("data-dirty", "true")
    assert page.console_errors == []


def test_a_failed_test_run_shows_the_error_and_reruns_from_the_failed_step(
    page, live_server_url, builder, celery_worker
):
    tenant, user = builder
    graph = {
        "schema": 1,
        "nodes": [
            {"id": "trigger", "type": "trigger", "position": {"x": 0, "y": 0}, "config": {"kind": "manual"}},
            {"id": "ask", "type": "llm", "position": {"x": 260, "y": 0},
             "config": {"provider": "scripted", "prompt": "Hello",
                        "script": {"default": {"text": "Hi!", "fail": "bad_request", "fail_attempts": 1}}}},
            {"id": "result", "type": "output", "position": {"x": 520, "y": 0}, "config": {}},
        ],
        "edges": [
            {"id": "e1", "source": "trigger", "sourceHandle": "out", "target": "ask", "targetHandle": "in"},
            {"id": "e2", "source": "ask", "sourceHandle": "out", "target": "result", "targetHandle": "in"},
        ],
    }  # fmt: skip
    flow = services.flow_create(tenant=tenant, name="Flaky", graph=graph)
    log_in(page, live_server_url, user.username)
    page.wait_for_url("**/flows/")
    page.goto(f"{live_server_url}/flows/{flow.pk}/edit/")
    page.get_by_role("button", name="Run…").click()
    page.get_by_role("button", name="Start run").click()  # the draft, as a test run
    expect(page.locator("[data-run-status]")).to_have_text("failed", timeout=30_000)
    expect(node(page, "ask").locator(".fnode")).to_have_class(re.compile(r"\bstatus-failed\b"))
    node(page, "ask").click()
    page.get_by_role("tab", name="Config").click()
    expect(page.locator(".step-details .step-json.error")).to_contain_text("scripted 400")
    shot(page, "editor-run-failed.png")
    run = Run.objects.get(flow=flow)
    first_finish = run.finished_at
    page.get_by_role("tab", name="Runs").click()
    # The scripted failure is deterministic per attempt, and a re-run starts the step afresh:
    # it fails again, after running again from the failed step only.
    page.get_by_role("button", name="Re-run from failed").click()
    for _ in range(60):
        run.refresh_from_db()
        if run.finished_at != first_finish:
            break
        page.wait_for_timeout(500)
    assert run.finished_at != first_finish and run.status == "failed"
    expect(page.locator("[data-run-status]")).to_have_text("failed")
    expect(node(page, "trigger").locator(".fnode")).to_have_class(re.compile(r"\bstatus-succeeded\b"))
    assert page.console_errors == []


def test_a_viewer_sees_the_flow_read_only(page, live_server_url, builder):
    tenant, _user = builder
    starter_flow(tenant, "Shared")
    viewer = make_member(tenant, Role.VIEWER, username="vera")
    log_in(page, live_server_url, viewer.username)
    page.wait_for_url("**/flows/")
    expect(page.get_by_role("button", name="Create flow")).to_have_count(0)
    page.get_by_role("link", name="View").click()
    expect(node(page, "ask")).to_be_visible()
    expect(page.locator('.palette [data-node-type="llm"]')).to_be_disabled()
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    node(page, "ask").click()
    expect(page.locator("#cfg-ask-prompt")).to_be_disabled()
    page.keyboard.press("Delete")
    expect(node(page, "ask")).to_be_visible()
    assert page.console_errors == []


def test_the_trigger_shows_how_to_call_the_flow_and_sets_its_webhook_secret(page, live_server_url, builder):
    tenant, user = builder
    graph = {
        "schema": 1,
        "nodes": [{"id": "trigger", "type": "trigger", "position": {"x": 0, "y": 0}, "config": {"kind": "webhook"}},
                  {"id": "out", "type": "output", "position": {"x": 280, "y": 0}, "config": {}}],
        "edges": [{"id": "e1", "source": "trigger", "sourceHandle": "out", "target": "out", "targetHandle": "in"}],
    }  # fmt: skip
    flow = services.flow_create(tenant=tenant, name="Hooked", graph=graph)
    services.flow_publish(flow=flow)
    log_in(page, live_server_url, user.username)
    page.wait_for_url("**/flows/")
    page.goto(f"{live_server_url}/flows/{flow.pk}/edit/")
    node(page, "trigger").click()
    url = f"{live_server_url}/api/v1/hooks/{flow.webhook_token}/"
    expect(page.get_by_label("Webhook URL")).to_have_text(url)
    expect(page.get_by_text("Anyone with the URL can start a run")).to_be_visible()

    page.get_by_label("Signing secret").fill("s3cret")
    page.get_by_role("button", name="Require signatures").click()
    expect(page.get_by_text("Secret saved: calls must now be signed.")).to_be_visible()
    expect(page.get_by_text("Signed calls only")).to_be_visible()
    flow.refresh_from_db()
    assert flow.webhook_secret and "s3cret" not in flow.webhook_secret  # stored encrypted

    def post(headers: dict) -> int:
        request = urllib.request.Request(url, data=b'{"a": 1}', method="POST",
                                         headers={"Content-Type": "application/json", **headers})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert post({}) == 401
    signature = "sha256=" + hmac.new(b"s3cret", b'{"a": 1}', hashlib.sha256).hexdigest()
    assert post({"X-Studio-Signature": signature}) in (200, 202)
    shot(page, "editor-webhook-trigger.png")

    page.get_by_label("Kind").select_option("api")  # the form switches to the API call
    expect(page.get_by_label("Example call")).to_contain_text(f"/api/v1/flows/{flow.pk}/runs/?wait=30")
    assert page.console_errors == []


def test_the_runs_panel_pages_through_older_runs(page, live_server_url, builder):
    tenant, user = builder
    graph = {
        "schema": 1,
        "nodes": [
            {"id": "trigger", "type": "trigger", "position": {"x": 0, "y": 0}, "config": {"kind": "manual"}}
        ],
        "edges": [],
    }
    flow = services.flow_create(tenant=tenant, name="Busy", graph=graph)
    services.flow_publish(flow=flow)
    for _ in range(55):  # a trigger alone finishes as it starts: no worker needed
        services.run_request(flow=flow, version=None, inputs={}, trigger="api")
    log_in(page, live_server_url, user.username)
    page.wait_for_url("**/flows/")
    page.goto(f"{live_server_url}/flows/{flow.pk}/edit/")
    page.get_by_role("tab", name="Runs").click()
    expect(page.locator(".run-item")).to_have_count(50)
    page.get_by_role("button", name="Load older runs").click()
    expect(page.locator(".run-item")).to_have_count(55)
    expect(page.get_by_role("button", name="Load older runs")).to_have_count(0)
    ids = [int(t.strip("#")) for t in page.locator(".run-item > span:first-child").all_inner_texts()]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 55
    assert page.console_errors == []
