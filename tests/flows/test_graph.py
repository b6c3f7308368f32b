"""Graph validation: every rule, each problem addressed to a node or an edge."""

from __future__ import annotations

import re

import pytest

from flows.graph import MalformedGraph, check_well_formed, graph_sha256, validate
from tests.flows.helpers import edge, graph, node, scripted_llm


def problems_of(doc: dict, **kwargs) -> list[dict]:
    return [p.as_dict() for p in validate(check_well_formed(doc), **kwargs)]


def ok_graph() -> dict:
    return graph(
        [node("trigger", "trigger"), scripted_llm("ask", "Hi {{ input.name }}"),
         node("out", "output", mapping={"a": "{{ nodes.ask.output.text }}"})],
        [edge("trigger", "ask"), edge("ask", "out")],
    )  # fmt: skip


def test_a_good_graph_has_no_problems():
    assert problems_of(ok_graph()) == []


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a graph document is a JSON object"),
        ({"nodes": {}, "edges": []}, "'nodes' must be a list"),
        ({"nodes": [{"id": 1, "type": "llm"}], "edges": []}, "nodes[0] must be an object with string 'id'"),
        ({"nodes": [], "edges": [{"id": "e", "source": "a"}]}, "edges[0] must be an object"),
        ({"schema": 7, "nodes": [], "edges": []}, "unsupported graph schema 7"),
    ],
)
def test_documents_that_are_not_graphs_are_malformed(doc, message):
    with pytest.raises(MalformedGraph, match=re.escape(message)):
        check_well_formed(doc)


def test_unknown_node_type():
    doc = ok_graph()
    doc["nodes"].append(node("mystery", "teleport"))
    doc["edges"].append(edge("ask", "mystery"))
    assert {"node": "mystery", "message": "unknown node type 'teleport'"} in problems_of(doc)


def test_config_not_matching_its_schema_names_the_field():
    doc = ok_graph()
    doc["nodes"][1]["config"]["max_tokens"] = "lots"
    doc["nodes"][1]["config"]["tempreature"] = 0.3
    problems = problems_of(doc)
    assert {"node": "ask", "message": "max_tokens: 'lots' is not of type 'integer'"} in problems
    assert any(p["node"] == "ask" and "unknown setting" in p["message"] and "tempreature" in p["message"]
               for p in problems)  # fmt: skip


def test_a_required_setting_is_named():
    doc = ok_graph()
    del doc["nodes"][1]["config"]["prompt"]
    assert {"node": "ask", "message": "'prompt' is required"} in problems_of(doc)


def test_an_openai_compatible_model_needs_its_endpoint():
    doc = ok_graph()
    doc["nodes"][1]["config"]["provider"] = "openai_compatible"
    assert {"node": "ask", "message": "'base_url' is required"} in problems_of(doc)


def test_a_dangling_edge():
    doc = ok_graph()
    doc["edges"].append({"id": "loose", "source": "ask", "target": "ghost"})
    assert {
        "edge": "loose",
        "message": "the edge points at a node that does not exist: 'ghost'",
    } in problems_of(doc)


def test_a_missing_handle_lists_the_real_ones():
    doc = ok_graph()
    doc["edges"][0]["sourceHandle"] = "maybe"
    problems = problems_of(doc)
    assert {
        "edge": doc["edges"][0]["id"],
        "message": "trigger has no output 'maybe' (outputs: out)",
    } in problems


def test_an_edge_into_a_trigger_has_no_input():
    doc = ok_graph()
    doc["edges"].append({"id": "back", "source": "ask", "target": "trigger"})
    assert any(
        p.get("edge") == "back" and "trigger has no input 'in'" in p["message"] for p in problems_of(doc)
    )


def test_any_cycle_is_refused_on_its_nodes_and_an_edge():
    doc = graph(
        [
            node("trigger", "trigger"),
            node("a", "transform", template="a"),
            node("b", "transform", template="b"),
        ],
        [edge("trigger", "a"), edge("a", "b"), edge("b", "a")],
    )
    problems = problems_of(doc)
    assert {p.get("node") for p in problems if "cycle" in p["message"]} >= {"a", "b"}
    assert any(p.get("edge") and "closes a cycle" in p["message"] for p in problems)


def test_a_self_loop_is_refused():
    doc = ok_graph()
    doc["edges"].append({"id": "self", "source": "ask", "target": "ask"})
    assert any(p.get("edge") == "self" and "to itself" in p["message"] for p in problems_of(doc))


def test_an_unreachable_node():
    doc = ok_graph()
    doc["nodes"].append(node("island", "transform", template="x"))
    assert {"node": "island", "message": "this node cannot be reached from the trigger"} in problems_of(doc)


def test_a_note_is_never_unreachable():
    doc = ok_graph()
    doc["nodes"].append(node("sticky", "note", text="remember the refund policy"))
    assert problems_of(doc) == []


def test_no_trigger_and_two_triggers():
    doc = graph([node("a", "transform", template="x")], [])
    assert any("no trigger" in p["message"] for p in problems_of(doc))
    doc = ok_graph()
    doc["nodes"].append(node("second", "trigger"))
    assert {"node": "second", "message": "a flow has one trigger; remove this one"} in problems_of(doc)


def test_a_template_may_only_read_upstream_nodes():
    doc = ok_graph()
    doc["nodes"][1]["config"]["prompt"] = "{{ nodes.out.output }} and {{ nodes.nowhere.output }}"
    problems = problems_of(doc)
    assert {
        "node": "ask",
        "message": "the template reads nodes.out, which is not upstream of this node",
    } in problems
    assert {"node": "ask", "message": "the template reads nodes.nowhere, which does not exist"} in problems


def test_a_template_syntax_error_names_the_field():
    doc = ok_graph()
    doc["nodes"][1]["config"]["prompt"] = "Hi {{ input.name "
    assert any(p.get("node") == "ask" and p["message"].startswith("prompt: template syntax error")
               for p in problems_of(doc))  # fmt: skip


def test_a_bad_node_id():
    doc = ok_graph()
    doc["nodes"].append(node("Bad-Id", "note"))
    assert any(p.get("node") == "Bad-Id" and "node id" in p["message"] for p in problems_of(doc))


def test_a_subflow_may_not_run_its_own_flow_directly_or_indirectly():
    graphs = {
        (2, 1): graph([node("trigger", "trigger"), node("call", "subflow", flow={"id": 1, "version": 1})],
                      [edge("trigger", "call")]),
    }  # fmt: skip
    doc = graph(
        [node("trigger", "trigger"), node("me", "subflow", flow={"id": 1, "version": 1}),
         node("other", "map", items="input.xs", flow={"id": 2, "version": 1}),
         node("missing", "subflow", flow={"id": 3, "version": 9})],
        [edge("trigger", "me"), edge("trigger", "other"), edge("trigger", "missing")],
    )  # fmt: skip
    problems = problems_of(doc, flow_id=1, resolve=lambda fid, ver: graphs.get((fid, ver)))
    assert {"node": "me", "message": "a flow cannot run itself as a sub-flow"} in problems
    assert {"node": "other", "message": "flow 2 v1 runs this flow again (indirectly)"} in problems
    assert {"node": "missing", "message": "flow 3 has no published version 9"} in problems


def test_size_limits():
    doc = graph([node("trigger", "trigger")] + [node(f"n{i}", "note") for i in range(5001)], [])
    assert problems_of(doc)[0]["message"] == "the graph has 5002 nodes; the limit is 5,000"
    doc = ok_graph()
    doc["nodes"][0]["config"]["input_schema"] = {"description": "x" * (5 * 1024 * 1024)}
    assert problems_of(doc)[0]["message"].startswith("the graph is 5.2 MB; the limit is 5 MB")


def test_the_sha256_ignores_key_order():
    a = {"schema": 1, "nodes": [], "edges": []}
    b = {"edges": [], "nodes": [], "schema": 1}
    assert graph_sha256(a) == graph_sha256(b)


def test_templates_inside_free_form_json_count_as_references():
    doc = ok_graph()
    body = {"reply": "{{ nodes.ask.output.text }}", "late": "{{ nodes.after.output }}"}
    doc["nodes"].append(node("post", "http", method="POST", url="https://api.example.com/x", body=body))
    doc["nodes"].append(node("after", "transform", template="x"))
    doc["edges"] += [edge("ask", "post"), edge("post", "after")]
    assert {
        "node": "post",
        "message": "the template reads nodes.after, which is not upstream of this node",
    } in (problems_of(doc))
