"""The flow graph document: its shape, its validation and its compiled form.

One validator serves saving a draft, publishing and importing. Saving stores any
*well-formed* document (``MalformedGraph`` otherwise) and reports its problems;
publishing refuses a graph with problems. Every problem names a node or an edge.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import jsonschema

from flows import templating
from flows.nodes import CHILD_RUN_TYPES, get_type

SCHEMA_VERSION = 1
MAX_NODES = 5000
MAX_BYTES = 5 * 1024 * 1024
NODE_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TRIGGER = "trigger"


class MalformedGraph(Exception):
    """Not a graph document at all (saving refuses it, with a message naming what is wrong)."""


def node_doc(node_id: str, node_type: str, **config) -> dict:
    """A node of a graph document (for code that builds graphs: starters, benchmarks, tests)."""
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0}, "config": config}


def edge_doc(source: str, target: str, source_handle: str = "out", target_handle: str = "in") -> dict:
    return {"id": f"{source}.{source_handle}->{target}", "source": source, "sourceHandle": source_handle,
            "target": target, "targetHandle": target_handle}  # fmt: skip


def graph_doc(nodes: list[dict], edges: list[dict]) -> dict:
    return {"schema": SCHEMA_VERSION, "nodes": nodes, "edges": edges}


def check_well_formed(doc: object) -> dict:
    """The document if it has the graph shape (nodes and edges as lists of objects with ids)."""
    if not isinstance(doc, dict):
        raise MalformedGraph("a graph document is a JSON object with 'nodes' and 'edges'")
    if doc.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise MalformedGraph(f"unsupported graph schema {doc.get('schema')!r} (expected {SCHEMA_VERSION})")
    for key in ("nodes", "edges"):
        if not isinstance(doc.get(key), list):
            raise MalformedGraph(f"'{key}' must be a list")
    for index, node in enumerate(doc["nodes"]):
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("id"), str)
            or not isinstance(node.get("type"), str)
        ):
            raise MalformedGraph(f"nodes[{index}] must be an object with string 'id' and 'type'")
        if "config" in node and not isinstance(node["config"], dict):
            raise MalformedGraph(f"nodes[{index}].config must be an object")
    for index, edge in enumerate(doc["edges"]):
        if not isinstance(edge, dict) or not all(
            isinstance(edge.get(k), str) for k in ("id", "source", "target")
        ):
            raise MalformedGraph(f"edges[{index}] must be an object with string 'id', 'source' and 'target'")
    return doc


def graph_sha256(doc: dict) -> str:
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def template_fields(schema: dict, value: object, path: str = "") -> Iterable[tuple[str, str, bool]]:
    """(path, source, is_expression) for every template or expression string in a config,
    found through the schema's ``format`` hints."""
    if not isinstance(schema, dict):
        return
    fmt = schema.get("format")
    if fmt in ("template", "expression") and isinstance(value, str):
        yield path, value, fmt == "expression"
        return
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from template_fields(sub, item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from template_fields(schema["items"], item, f"{path}[{index}]")


def _strings_with_markup(value: object) -> Iterable[str]:
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings_with_markup(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_with_markup(item)


@dataclass
class Problem:
    message: str
    node: str | None = None
    edge: str | None = None

    def as_dict(self) -> dict:
        out: dict = {"message": self.message}
        if self.node is not None:
            out["node"] = self.node
        if self.edge is not None:
            out["edge"] = self.edge
        return out


@dataclass
class CompiledGraph:
    """The graph indexed for the engine: nodes by id, edges in and out by handle."""

    doc: dict
    nodes: dict[str, dict] = field(default_factory=dict)
    incoming: dict[str, list[dict]] = field(default_factory=dict)
    outgoing: dict[str, list[dict]] = field(default_factory=dict)

    @classmethod
    def from_doc(cls, doc: dict) -> CompiledGraph:
        graph = cls(doc=doc)
        for node in doc["nodes"]:
            graph.nodes[node["id"]] = node
            graph.incoming[node["id"]] = []
            graph.outgoing[node["id"]] = []
        for edge in doc["edges"]:
            if edge["source"] in graph.nodes and edge["target"] in graph.nodes:
                graph.outgoing[edge["source"]].append(edge)
                graph.incoming[edge["target"]].append(edge)
        return graph

    @cached_property
    def executable(self) -> list[str]:
        return [nid for nid, node in self.nodes.items() if (t := get_type(node["type"])) and t.executes]

    @cached_property
    def trigger_id(self) -> str | None:
        return next((nid for nid, n in self.nodes.items() if n["type"] == TRIGGER), None)

    def config(self, node_id: str) -> dict:
        return self.nodes[node_id].get("config") or {}

    def successors(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(edge["target"] for edge in self.outgoing[node_id]))

    def predecessors(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(edge["source"] for edge in self.incoming[node_id]))

    @cached_property
    def _ancestors(self) -> dict[str, frozenset[str]]:
        memo: dict[str, frozenset[str]] = {}
        for node_id in self.topological_order():
            found: set[str] = set()
            for pred in self.predecessors(node_id):
                found.add(pred)
                found |= memo.get(pred, frozenset())
            memo[node_id] = frozenset(found)
        return memo

    def ancestors(self, node_id: str) -> frozenset[str]:
        return self._ancestors.get(node_id, frozenset())

    def topological_order(self) -> list[str]:
        indegree = {nid: len(self.predecessors(nid)) for nid in self.nodes}
        queue = deque(nid for nid, d in indegree.items() if d == 0)
        order = []
        while queue:
            nid = queue.popleft()
            order.append(nid)
            for succ in self.successors(nid):
                indegree[succ] -= 1
                if indegree[succ] == 0:
                    queue.append(succ)
        return order

    @cached_property
    def references(self) -> dict[str, frozenset[str]]:
        """Node ids each node's templates read through ``nodes.<id>``."""
        out: dict[str, frozenset[str]] = {}
        for nid, node in self.nodes.items():
            node_type = get_type(node["type"])
            found: set[str] = set()
            config = node.get("config") or {}
            if node_type is not None:
                for _, source, is_expr in template_fields(node_type.full_schema(), config):
                    found |= templating.referenced_nodes(source, expression=is_expr)
            # Free-form JSON (an HTTP body, a fallback output) may hold templates the schema
            # cannot point at: any string with template markup counts too.
            for source in _strings_with_markup(config):
                found |= templating.referenced_nodes(source)
            out[nid] = frozenset(found)
        return out


FlowResolver = Callable[[int, int], "dict | None"]  # (flow id, version number) → that version's graph


def validate(doc: dict, *, flow_id: int | None = None, resolve: FlowResolver | None = None) -> list[Problem]:
    """Every problem of a well-formed graph document, each addressed to a node or an edge."""
    problems: list[Problem] = []
    size = len(json.dumps(doc, separators=(",", ":")))
    if size > MAX_BYTES:
        problems.append(
            Problem(f"the graph is {size / 1e6:.1f} MB; the limit is {MAX_BYTES // (1024 * 1024)} MB")
        )
    if len(doc["nodes"]) > MAX_NODES:
        problems.append(Problem(f"the graph has {len(doc['nodes'])} nodes; the limit is {MAX_NODES:,}"))
        return problems  # checking each of them would only bury that message

    seen: set[str] = set()
    for node in doc["nodes"]:
        problems += _node_problems(node, seen)
    graph = CompiledGraph.from_doc(doc)
    problems += _edge_problems(doc, graph)
    problems += _structure_problems(graph)
    problems += _reference_problems(graph)
    if resolve is not None:
        problems += _subflow_problems(graph, flow_id, resolve)
    return problems


def _node_problems(node: dict, seen: set[str]) -> list[Problem]:
    node_id = node["id"]
    problems = []
    if not NODE_ID.match(node_id):
        problems.append(
            Problem("a node id is a lowercase letter then letters, digits or _ (63 at most)", node_id)
        )
    if node_id in seen:
        problems.append(Problem(f"the node id {node_id!r} is used twice", node_id))
    seen.add(node_id)
    node_type = get_type(node["type"])
    if node_type is None:
        return [*problems, Problem(f"unknown node type {node['type']!r}", node_id)]
    config = node.get("config") or {}
    schema = node_type.full_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path)
        problems.append(Problem(f"{where + ': ' if where else ''}{_schema_message(error)}", node_id))
    for path, source, is_expr in template_fields(schema, config):
        message = templating.check_syntax(source, expression=is_expr)
        if message:
            problems.append(Problem(f"{path}: {message}", node_id))
    if node_type.check is not None:
        problems += [Problem(message, node_id) for message in node_type.check(config)]
    return problems


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "additionalProperties":
        return error.message.replace("Additional properties are not allowed", "unknown setting")
    if error.validator == "oneOf":
        return "needs exactly one of the alternative settings"
    return error.message


def _edge_problems(doc: dict, graph: CompiledGraph) -> list[Problem]:
    problems = []
    seen: set[str] = set()
    for edge in doc["edges"]:
        edge_id = edge["id"]
        if edge_id in seen:
            problems.append(Problem(f"the edge id {edge_id!r} is used twice", edge=edge_id))
        seen.add(edge_id)
        source, target = graph.nodes.get(edge["source"]), graph.nodes.get(edge["target"])
        if source is None or target is None:
            missing = edge["source"] if source is None else edge["target"]
            problems.append(
                Problem(f"the edge points at a node that does not exist: {missing!r}", edge=edge_id)
            )
            continue
        source_type, target_type = get_type(source["type"]), get_type(target["type"])
        if source_type is not None:
            handle = edge.get("sourceHandle") or "out"
            handles = source_type.output_handles(source.get("config") or {})
            if handle not in handles:
                available = ", ".join(handles) or "none"
                problems.append(Problem(
                    f"{source['id']} has no output {handle!r} (outputs: {available})", edge=edge_id))  # fmt: skip
        if target_type is not None:
            handle = edge.get("targetHandle") or "in"
            if handle not in target_type.inputs:
                problems.append(Problem(f"{target['id']} has no input {handle!r}", edge=edge_id))
        if edge["source"] == edge["target"]:
            problems.append(Problem("an edge cannot connect a node to itself", edge=edge_id))
    return problems


def _structure_problems(graph: CompiledGraph) -> list[Problem]:
    problems = []
    triggers = [nid for nid, n in graph.nodes.items() if n["type"] == TRIGGER]
    if not triggers:
        problems.append(Problem("the flow has no trigger: add a Trigger node where runs start"))
    for extra in triggers[1:]:
        problems.append(Problem("a flow has one trigger; remove this one", extra))
    order = graph.topological_order()
    if len(order) < len(graph.nodes):
        ordered = set(order)
        in_cycle = {nid for nid in graph.nodes if nid not in ordered}
        on_cycle = {nid for nid in in_cycle if any(s in in_cycle for s in graph.successors(nid))}
        for nid in sorted(on_cycle):
            problems.append(
                Problem("this node is part of a cycle (loop with a map over a sub-flow instead)", nid)
            )
        for edge_list in graph.outgoing.values():
            for edge in edge_list:
                if (
                    edge["source"] in on_cycle
                    and edge["target"] in on_cycle
                    and edge["source"] != edge["target"]
                ):
                    problems.append(Problem("this edge closes a cycle", edge=edge["id"]))
                    break
    if triggers:
        reachable = {triggers[0]}
        queue = deque([triggers[0]])
        while queue:
            for succ in graph.successors(queue.popleft()):
                if succ not in reachable:
                    reachable.add(succ)
                    queue.append(succ)
        for nid, node in graph.nodes.items():
            node_type = get_type(node["type"])
            if nid not in reachable and (node_type is None or node_type.executes) and node["type"] != TRIGGER:
                problems.append(Problem("this node cannot be reached from the trigger", nid))
    return problems


def _reference_problems(graph: CompiledGraph) -> list[Problem]:
    problems = []
    for nid, refs in graph.references.items():
        upstream = graph.ancestors(nid)
        for ref in sorted(refs):
            if ref not in upstream:
                where = "does not exist" if ref not in graph.nodes else "is not upstream of this node"
                problems.append(Problem(f"the template reads nodes.{ref}, which {where}", nid))
    return problems


def graph_capabilities(doc: dict) -> dict[str, set[str]]:
    """What each node of a graph needs granted (``http:<host>``, ``billing.write``…), by node id;
    nodes of unknown types and nodes that need nothing are left out."""
    needs: dict[str, set[str]] = {}
    for node in doc.get("nodes", []):
        node_type = get_type(node.get("type", ""))
        required = node_type.required_capabilities(node.get("config") or {}) if node_type else set()
        if required:
            needs[node["id"]] = required
    return needs


def flow_references(doc: dict) -> list[tuple[str, int, int]]:
    """(node id, flow id, version) of every map and sub-flow node in a graph."""
    refs = []
    for node in doc.get("nodes", []):
        if node.get("type") in CHILD_RUN_TYPES:
            ref = (node.get("config") or {}).get("flow") or {}
            if isinstance(ref.get("id"), int) and isinstance(ref.get("version"), int):
                refs.append((node["id"], ref["id"], ref["version"]))
    return refs


def _subflow_problems(graph: CompiledGraph, flow_id: int | None, resolve: FlowResolver) -> list[Problem]:
    problems = []
    for node_id, ref_flow, ref_version in flow_references(graph.doc):
        if ref_flow == flow_id:
            problems.append(Problem("a flow cannot run itself as a sub-flow", node_id))
            continue
        child = resolve(ref_flow, ref_version)
        if child is None:
            problems.append(Problem(f"flow {ref_flow} has no published version {ref_version}", node_id))
            continue
        # Follow the pinned versions down; reaching this flow again is an indirect self-reference.
        seen = {(ref_flow, ref_version)}
        stack = list(flow_references(child))
        while stack:
            _, fid, ver = stack.pop()
            if fid == flow_id:
                problems.append(
                    Problem(f"flow {ref_flow} v{ref_version} runs this flow again (indirectly)", node_id)
                )
                break
            if (fid, ver) in seen:
                continue
            seen.add((fid, ver))
            deeper = resolve(fid, ver)
            if deeper is not None:
                stack += flow_references(deeper)
    return problems
