"""The flows HTTP contract: drafts, problems, publishing, versions, import/export, runs, webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from rest_framework.test import APIClient

from flows import selectors
from flows.models import Flow, Run
from studio.tenants.roles import Role
from tests.flows.helpers import edge, graph, node, scripted_llm
from tests.pg import queries_sent

GOOD = graph(
    [node("trigger", "trigger", input_schema={"type": "object", "required": ["q"],
                                              "properties": {"q": {"type": "string"}}}),
     scripted_llm("ask", "Answer: {{ input.q }}", script={"responses": ["42"]}),
     node("out", "output", mapping={"answer": "{{ nodes.ask.output.text }}"})],
    [edge("trigger", "ask"), edge("ask", "out")],
)  # fmt: skip


@pytest.fixture
def builder(trio, api) -> APIClient:
    return api(trio.tenant, Role.BUILDER)


def create_flow(client: APIClient, doc: dict | None = None) -> dict:
    response = client.post("/api/v1/flows/", {"name": "Support triage", **({"graph": doc} if doc else {})},
                           format="json")  # fmt: skip
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.mark.django_db
class TestDrafts:
    def test_the_registry_serves_every_node_type_with_schema_and_handles(self, builder):
        types = {t["type"]: t for t in builder.get("/api/v1/node-types/").json()["results"]}
        assert set(types) >= {"trigger", "llm", "agent", "router", "condition", "http", "transform", "guardrail",
                              "map", "subflow", "output", "note"}  # fmt: skip
        assert types["condition"]["outputs"] == ["true", "false"]
        assert types["llm"]["config_schema"]["properties"]["prompt"]["format"] == "template"
        assert "timeout_s" in types["llm"]["config_schema"]["properties"]

    def test_a_new_flow_starts_with_a_trigger(self, builder):
        flow = create_flow(builder)
        draft = builder.get(f"/api/v1/flows/{flow['id']}/draft/").json()
        assert [n["type"] for n in draft["graph"]["nodes"]] == ["trigger"]
        assert draft["revision"] == 1 and draft["problems"] == []

    def test_saving_keeps_a_draft_with_problems_and_lists_them(self, builder):
        flow = create_flow(builder)
        broken = json.loads(json.dumps(GOOD))
        broken["nodes"][1]["config"]["max_tokens"] = -5
        response = builder.put(
            f"/api/v1/flows/{flow['id']}/draft/", {"graph": broken, "revision": 1}, format="json"
        )
        assert response.status_code == 200
        body = response.json()
        assert body["revision"] == 2
        assert body["problems"] == [
            {"node": "ask", "message": "max_tokens: -5 is less than the minimum of 1"}
        ]
        assert Flow.objects.get(pk=flow["id"]).draft == broken  # nothing lost

    def test_a_draft_comes_back_exactly_big_integers_and_line_separators_included(self, builder):
        # Answers are written by orjson, which refuses integers beyond 64 bits: those answers go
        # to DRF's encoder whole, so nothing is lost or turned into a float.
        flow = create_flow(builder)
        url = f"/api/v1/flows/{flow['id']}/draft/"
        doc = graph(
            [node("trigger", "trigger"), node("memo", "note", text="a\u2028b")],
            [],
        )
        for big in (2**70, 7):
            doc["meta"] = {"big": big}
            assert (
                builder.put(url, {"graph": doc, "revision": 1 if big > 7 else 2}, format="json").status_code
                == 200
            )
            response = builder.get(url)
            assert response.status_code == 200
            assert b"\xe2\x80\xa8" not in response.content and b"\\u2028" in response.content
            assert response.json()["graph"] == doc
            assert json.loads(response.content)["graph"]["meta"]["big"] == big

    def test_a_stale_revision_is_a_409_and_overwrites_nothing(self, builder):
        flow = create_flow(builder)
        url = f"/api/v1/flows/{flow['id']}/draft/"
        assert builder.put(url, {"graph": GOOD, "revision": 1}, format="json").status_code == 200
        response = builder.put(url, {"graph": {"nodes": [], "edges": []}, "revision": 1}, format="json")
        assert response.status_code == 409
        assert "since you loaded it" in response.json()["error"]["message"]
        assert Flow.objects.get(pk=flow["id"]).draft == GOOD

    @pytest.mark.parametrize(
        "body", [{"graph": [1, 2], "revision": 1}, {"graph": {"nodes": "x"}, "revision": 1}]
    )
    def test_a_body_that_is_not_a_graph_is_a_400(self, builder, body):
        flow = create_flow(builder)
        response = builder.put(f"/api/v1/flows/{flow['id']}/draft/", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "malformed_graph"

    def test_malformed_json_is_a_400(self, builder):
        flow = create_flow(builder)
        response = builder.generic(
            "PUT", f"/api/v1/flows/{flow['id']}/draft/", '{"graph": {', content_type="application/json"
        )
        assert response.status_code == 400
        assert "JSON parse error" in response.json()["error"]["message"]

    def test_a_graph_over_10_mb_is_a_413(self, builder):
        flow = create_flow(builder)
        body = json.dumps(
            {"graph": {"nodes": [], "edges": [], "pad": "x" * (10 * 1024 * 1024)}, "revision": 1}
        )
        response = builder.generic(
            "PUT", f"/api/v1/flows/{flow['id']}/draft/", body, content_type="application/json"
        )
        assert response.status_code == 413

    def test_publishing_refuses_problems_then_freezes_a_version(self, builder):
        flow = create_flow(builder)
        response = builder.post(f"/api/v1/flows/{flow['id']}/publish/", {"note": "first"}, format="json")
        assert response.status_code == 201  # the starter graph (one trigger) is valid
        broken = json.loads(json.dumps(GOOD))
        broken["edges"].append({"id": "loose", "source": "ask", "target": "ghost"})
        builder.put(f"/api/v1/flows/{flow['id']}/draft/", {"graph": broken, "revision": 1}, format="json")
        refused = builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        assert refused.status_code == 400
        assert refused.json()["error"]["details"] == [
            {"edge": "loose", "message": "the edge points at a node that does not exist: 'ghost'"}
        ]
        builder.put(f"/api/v1/flows/{flow['id']}/draft/", {"graph": GOOD, "revision": 2}, format="json")
        published = builder.post(f"/api/v1/flows/{flow['id']}/publish/", {"note": "v2"}, format="json").json()
        assert published["version"] == 2 and len(published["sha256"]) == 64
        versions = builder.get(f"/api/v1/flows/{flow['id']}/versions/").json()["results"]
        assert [v["number"] for v in versions] == [2, 1]
        assert builder.get(f"/api/v1/flows/{flow['id']}/versions/2/").json()["graph"] == GOOD

    def test_restoring_a_version_makes_it_the_draft(self, builder):
        flow = create_flow(builder)
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        builder.put(f"/api/v1/flows/{flow['id']}/draft/", {"graph": GOOD, "revision": 1}, format="json")
        restored = builder.post(f"/api/v1/flows/{flow['id']}/versions/1/restore/").json()
        assert [n["id"] for n in restored["graph"]["nodes"]] == ["trigger"]
        assert restored["revision"] == 3

    def test_export_then_import_round_trips(self, builder):
        flow = create_flow(builder, GOOD)
        exported = builder.get(f"/api/v1/flows/{flow['id']}/export/").json()
        assert exported["graph"] == GOOD
        imported = builder.post("/api/v1/flows/import/", exported, format="json")
        assert imported.status_code == 201
        assert imported.json()["problems"] == []
        assert Flow.objects.get(pk=imported.json()["id"]).draft == GOOD

    def test_a_broken_import_creates_nothing(self, builder, trio):
        before = Flow.objects.count()
        response = builder.post("/api/v1/flows/import/", {"name": "x", "graph": {"nodes": 3}}, format="json")
        assert response.status_code == 400
        assert Flow.objects.count() == before

    def test_viewers_read_but_do_not_edit(self, trio, api, builder):
        flow = create_flow(builder)
        viewer = api(trio.tenant, Role.VIEWER)
        assert viewer.get(f"/api/v1/flows/{flow['id']}/draft/").status_code == 200
        assert viewer.put(f"/api/v1/flows/{flow['id']}/draft/", {"graph": GOOD, "revision": 1},
                          format="json").status_code == 403  # fmt: skip
        assert viewer.post(f"/api/v1/flows/{flow['id']}/runs/", {}, format="json").status_code == 403

    def test_another_tenants_flow_is_a_404_everywhere(self, trio, api, builder):
        flow = create_flow(builder)
        outsider = api(trio.other_tenant, Role.OWNER)
        base = f"/api/v1/flows/{flow['id']}"
        for method, url in [
            ("get", f"{base}/"),
            ("get", f"{base}/draft/"),
            ("post", f"{base}/publish/"),
            ("get", f"{base}/export/"),
            ("post", f"{base}/runs/"),
            ("delete", f"{base}/"),
        ]:
            assert getattr(outsider, method)(url, {}, format="json").status_code == 404, url  # fmt: skip
        assert Flow.objects.get(pk=flow["id"]).deleted_at is None

    def test_only_admins_grant_capabilities(self, trio, api, builder):
        flow = create_flow(builder)
        refused = builder.patch(f"/api/v1/flows/{flow['id']}/", {"granted_capabilities": ["billing.write"]},
                                format="json")  # fmt: skip
        assert refused.status_code == 403
        admin = api(trio.tenant, Role.ADMIN)
        granted = admin.patch(f"/api/v1/flows/{flow['id']}/", {"granted_capabilities": ["billing.write"]},
                              format="json")  # fmt: skip
        assert granted.json()["granted_capabilities"] == ["billing.write"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
class TestRuns:
    def test_a_run_with_wait_answers_200_with_the_outputs(self, builder):
        flow = create_flow(builder, GOOD)
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        answers = []
        sent = queries_sent(
            lambda: answers.append(
                builder.post(
                    f"/api/v1/flows/{flow['id']}/runs/?wait=20", {"inputs": {"q": "life"}}, format="json"
                )
            )
        )
        response = answers[0]
        assert response.status_code == 200, response.json()
        # listening from the run's commit, ahead of its task: its status is never asked for
        status_sql = selectors._RUN_STATUS_SQL.split("%s")[0]
        assert not [q for q in sent if q.startswith(f'"{status_sql}')], sent
        run = response.json()
        assert run["status"] == "succeeded" and run["outputs"] == {"answer": "42"}
        assert [s["node_id"] for s in run["steps"]] == ["trigger", "ask", "out"]
        assert run["steps"][1]["tokens_in"] > 0

    def test_a_run_without_wait_is_202_then_readable(self, builder):
        flow = create_flow(builder, GOOD)
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        started = builder.post(f"/api/v1/flows/{flow['id']}/runs/", {"inputs": {"q": "x"}}, format="json")
        assert started.status_code == 202
        from tests.flows.helpers import wait_run

        wait_run(Run.objects.get(pk=started.json()["id"]))
        detail = builder.get(f"/api/v1/runs/{started.json()['id']}/").json()
        assert detail["status"] == "succeeded"
        listed = builder.get(f"/api/v1/flows/{flow['id']}/runs/?status=succeeded").json()["results"]
        assert [r["id"] for r in listed] == [started.json()["id"]]

    def test_inputs_that_break_the_trigger_schema_are_a_400_naming_the_field(self, builder):
        flow = create_flow(builder, GOOD)
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        response = builder.post(f"/api/v1/flows/{flow['id']}/runs/", {"inputs": {"q": 7}}, format="json")
        assert response.status_code == 400
        assert response.json()["error"]["details"] == [
            {"field": "inputs.q", "message": "7 is not of type 'string'"}
        ]
        assert not Run.objects.exists()

    def test_the_same_idempotency_key_returns_the_same_run(self, builder):
        flow = create_flow(builder, GOOD)
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        first = builder.post(f"/api/v1/flows/{flow['id']}/runs/", {"inputs": {"q": "x"}}, format="json",
                             HTTP_IDEMPOTENCY_KEY="order-1")  # fmt: skip
        again = builder.post(f"/api/v1/flows/{flow['id']}/runs/", {"inputs": {"q": "x"}}, format="json",
                             HTTP_IDEMPOTENCY_KEY="order-1")  # fmt: skip
        assert first.json()["id"] == again.json()["id"]
        assert Run.objects.count() == 1

    def test_a_test_run_of_the_draft(self, builder):
        flow = create_flow(builder, GOOD)
        response = builder.post(f"/api/v1/flows/{flow['id']}/runs/?wait=20", {"inputs": {"q": "x"}, "version": "draft"},
                                format="json")  # fmt: skip
        assert response.json()["is_test"] is True and response.json()["status"] == "succeeded"

    def test_without_a_published_version_a_run_is_refused_clearly(self, builder):
        flow = create_flow(builder, GOOD)
        response = builder.post(f"/api/v1/flows/{flow['id']}/runs/", {"inputs": {"q": "x"}}, format="json")
        assert response.status_code == 400
        assert "no published version" in response.json()["error"]["message"]

    def test_a_run_starts_on_the_latest_version_and_not_on_a_deleted_flow(self, builder):
        flow = create_flow(builder, GOOD)
        for _ in range(2):
            assert builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json").status_code in (
                200,
                201,
            )
        started = builder.post(
            f"/api/v1/flows/{flow['id']}/runs/?wait=20", {"inputs": {"q": "x"}}, format="json"
        )
        assert started.status_code == 200 and started.json()["version"] == 2, started.json()
        assert builder.delete(f"/api/v1/flows/{flow['id']}/").status_code == 204
        gone = builder.post(f"/api/v1/flows/{flow['id']}/runs/", {"inputs": {"q": "x"}}, format="json")
        assert gone.status_code == 404

    def test_replay_runs_the_same_inputs_on_another_version(self, builder):
        flow = create_flow(builder, GOOD)
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        first = builder.post(
            f"/api/v1/flows/{flow['id']}/runs/?wait=20", {"inputs": {"q": "x"}}, format="json"
        ).json()
        changed = json.loads(json.dumps(GOOD))
        changed["nodes"][1]["config"]["script"] = {"responses": ["43"]}
        saved = builder.put(
            f"/api/v1/flows/{flow['id']}/draft/", {"graph": changed, "revision": 1}, format="json"
        )
        assert saved.status_code == 200
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        replay = builder.post(f"/api/v1/runs/{first['id']}/replay/", {"version": 2}, format="json")
        assert replay.status_code == 202
        from tests.flows.helpers import wait_run

        run = wait_run(Run.objects.get(pk=replay.json()["id"]))
        assert (run.version.number, run.inputs, run.outputs) == (2, {"q": "x"}, {"answer": "43"})
        latest = builder.post(f"/api/v1/runs/{first['id']}/replay/", {}, format="json")
        assert latest.status_code == 202 and latest.json()["version"] == 2, latest.json()
        for body, field in (([1], "non_field_errors"), ({"version": 0}, "version")):
            refused = builder.post(f"/api/v1/runs/{first['id']}/replay/", body, format="json")
            assert refused.status_code == 400 and refused.json()["error"]["details"][0]["field"] == field

    def test_a_webhook_with_an_hmac_signature(self, builder, trio, api):
        flow = create_flow(builder, GOOD)
        builder.post(f"/api/v1/flows/{flow['id']}/publish/", {}, format="json")
        api(trio.tenant, Role.ADMIN).patch(
            f"/api/v1/flows/{flow['id']}/", {"webhook_secret": "s3cret"}, format="json"
        )
        body = json.dumps({"q": "from a webhook"}).encode()
        url = flow["webhook_path"]
        anonymous = APIClient()
        unsigned = anonymous.generic("POST", url, body, content_type="application/json")
        assert unsigned.status_code == 401
        signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        signed = anonymous.generic("POST", url, body, content_type="application/json",
                                   HTTP_X_STUDIO_SIGNATURE=signature, HTTP_IDEMPOTENCY_KEY="evt-1")  # fmt: skip
        assert signed.status_code in (200, 202)
        repeat = anonymous.generic("POST", url, body, content_type="application/json",
                                   HTTP_X_STUDIO_SIGNATURE=signature, HTTP_IDEMPOTENCY_KEY="evt-1")  # fmt: skip
        assert repeat.json()["id"] == signed.json()["id"]
        assert Run.objects.get(pk=signed.json()["id"]).trigger == "webhook"
        assert anonymous.post("/api/v1/hooks/not-a-token/", {}, format="json").status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_run_payloads_are_what_the_documented_schema_says(trio):
    """run_payload is built by hand for speed; RunOutput and StepOutput document it: the same output."""
    from flows.api import RunOutput, StepOutput, run_payload
    from flows.selectors import run_get
    from studio.governance.redaction import shown_whole
    from tests.flows.helpers import published_flow, start, wait_run

    tenant = trio.tenant
    answer = {"text": "ok", "tokens_in": 12, "tokens_out": 3}
    child = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("ask", script={"responses": [answer]}), node("out", "output")],
        [edge("trigger", "ask"), edge("ask", "out")],
    ), name="child")  # fmt: skip
    parent = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("sub", "subflow", flow={"id": child.pk, "version": 1}, inputs={}),
         node("bad", "transform", mapping={"x": "{{ ''.__class__ }}"})],
        [edge("trigger", "sub"), edge("sub", "bad")],
    ), name="parent")  # fmt: skip
    finished = wait_run(start(parent, {"q": "hello"}))
    assert finished.status == "failed"
    runs = [
        run_get(tenant=tenant, pk=finished.pk),
        run_get(tenant=tenant, pk=Run.objects.get(parent_step__run=finished).pk),
    ]
    for run in runs:
        documented = {**RunOutput(run).data, "steps": StepOutput(run.steps.order_by("id"), many=True).data}
        assert run_payload(run, shown=shown_whole) == documented
    assert (
        run_payload(runs[1], shown=shown_whole)["parent_run"] == finished.pk
    )  # the child names its parent run
