import { beforeEach, describe, expect, it } from "vitest";
import { canvasToDoc, connectionProblem, diffGraphs, parseClipboard } from "../graph";
import { createEditorStore } from "./index";
import { withProblems } from "./serverSlice";
import type { NodeTypeInfo } from "../types";

const TYPES: NodeTypeInfo[] = [
  { type: "trigger", title: "Trigger", category: "Triggers", help: "", inputs: [], outputs: ["out"], dynamic_outputs: false,
    can_fail: false, executes: true, icon: "▶", color: "#000",
    config_schema: { type: "object", properties: { kind: { type: "string", enum: ["manual", "api"], default: "manual" },
      input_schema: { type: "object", default: { type: "object", properties: {} } } } } },
  { type: "llm", title: "LLM", category: "AI", help: "", inputs: ["in"], outputs: ["out"], dynamic_outputs: false,
    can_fail: true, executes: true, icon: "✦", color: "#000",
    config_schema: { type: "object", required: ["prompt"], properties: {
      provider: { type: "string", enum: ["anthropic", "scripted"], default: "anthropic" },
      prompt: { type: "string", format: "template", minLength: 1 } } } },
  { type: "router", title: "Router", category: "Logic", help: "", inputs: ["in"], outputs: [], dynamic_outputs: true,
    can_fail: true, executes: true, icon: "?", color: "#000", config_schema: { type: "object", properties: {} } },
  { type: "output", title: "Output", category: "Output", help: "", inputs: ["in"], outputs: [], dynamic_outputs: false,
    can_fail: false, executes: true, icon: "■", color: "#000", config_schema: { type: "object", properties: {} } },
];

let store: ReturnType<typeof createEditorStore>;
beforeEach(() => {
  store = createEditorStore();
  store.getState().setTypes(TYPES);
});

const s = () => store.getState();

describe("editing with undo and redo", () => {
  it("adds nodes with unique ids and schema defaults", () => {
    const a = s().addNode("llm", { x: 0, y: 0 });
    const b = s().addNode("llm", { x: 10, y: 0 });
    expect([a, b]).toEqual(["llm", "llm_2"]);
    expect(s().nodes[0].data.config).toEqual({ provider: "anthropic", prompt: "" });
    expect(s().nodes.filter((n) => n.selected).map((n) => n.id)).toEqual(["llm_2"]);
  });

  it("undoes and redoes every kind of edit", () => {
    s().addNode("trigger", { x: 0, y: 0 });
    s().addNode("llm", { x: 200, y: 0 });
    expect(s().connect({ source: "trigger", target: "llm", sourceHandle: "out", targetHandle: "in" })).toBeNull();
    s().updateConfig("llm", { provider: "scripted", prompt: "Hi {{ input.x }}" });
    expect(s().edges).toHaveLength(1);
    s().undo();
    expect(s().nodes[1].data.config.prompt).toBe("");
    s().undo();
    expect(s().edges).toHaveLength(0);
    s().undo();
    expect(s().nodes.map((n) => n.id)).toEqual(["trigger"]);
    s().redo();
    s().redo();
    s().redo();
    expect(s().edges).toHaveLength(1);
    expect(s().nodes[1].data.config.prompt).toBe("Hi {{ input.x }}");
    expect(s().future).toHaveLength(0);
  });

  it("coalesces typing in one field into one undo step", () => {
    s().addNode("llm", { x: 0, y: 0 });
    for (const text of ["H", "He", "Hel", "Hell", "Hello"]) s().updateConfig("llm", { prompt: text }, "config:llm:prompt");
    s().undo();
    expect(s().nodes[0].data.config.prompt).toBe("");
  });

  it("deletes the selection with its edges, undoably", () => {
    s().addNode("trigger", { x: 0, y: 0 });
    s().addNode("llm", { x: 200, y: 0 });
    s().connect({ source: "trigger", target: "llm", sourceHandle: "out", targetHandle: "in" });
    s().selectOnly("llm");
    s().deleteSelected();
    expect(s().nodes.map((n) => n.id)).toEqual(["trigger"]);
    expect(s().edges).toHaveLength(0);
    s().undo();
    expect(s().nodes).toHaveLength(2);
    expect(s().edges).toHaveLength(1);
  });

  it("renames a node and the templates that read it", () => {
    s().addNode("trigger", { x: 0, y: 0 });
    s().addNode("llm", { x: 200, y: 0 });
    s().addNode("llm", { x: 400, y: 0 });
    s().connect({ source: "llm", target: "llm_2", sourceHandle: "out", targetHandle: "in" });
    s().updateConfig("llm_2", { prompt: "{{ nodes.llm.output.text }}" });
    expect(s().renameNode("llm", "Bad Id")).toMatch(/lower case/);
    expect(s().renameNode("llm", "trigger")).toMatch(/already used/);
    expect(s().renameNode("llm", "draft")).toBeNull();
    expect(s().edges[0].source).toBe("draft");
    expect(s().nodes[2].data.config.prompt).toBe("{{ nodes.draft.output.text }}");
  });

  it("marks the draft dirty on edits and clean once applied from the server", () => {
    s().applyDraft({ graph: { schema: 1, nodes: [], edges: [] }, revision: 3, problems: [] });
    expect(s().editCount).toBe(s().savedEditCount);
    s().addNode("trigger", { x: 0, y: 0 });
    expect(s().editCount).not.toBe(s().savedEditCount);
  });
});

describe("connections", () => {
  beforeEach(() => {
    s().addNode("trigger", { x: 0, y: 0 });
    s().addNode("llm", { x: 200, y: 0 });
    s().addNode("llm", { x: 400, y: 0 });
    s().connect({ source: "trigger", target: "llm", sourceHandle: "out", targetHandle: "in" });
    s().connect({ source: "llm", target: "llm_2", sourceHandle: "out", targetHandle: "in" });
  });

  it("refuses self-loops, unknown handles and cycles", () => {
    const { nodes, edges, types } = s();
    expect(connectionProblem({ source: "llm", target: "llm", sourceHandle: "out", targetHandle: "in" }, nodes, edges, types))
      .toMatch(/itself/);
    expect(connectionProblem({ source: "llm", target: "llm_2", sourceHandle: "nope", targetHandle: "in" }, nodes, edges, types))
      .toMatch(/no output nope/);
    expect(connectionProblem({ source: "llm_2", target: "trigger", sourceHandle: "out", targetHandle: "in" }, nodes, edges, types))
      .toMatch(/no input/);
    expect(connectionProblem({ source: "llm_2", target: "llm", sourceHandle: "out", targetHandle: "in" }, nodes, edges, types))
      .toMatch(/cycle/);
    expect(connectionProblem({ source: "llm", target: "llm_2", sourceHandle: "error", targetHandle: "in" }, nodes, edges, types))
      .toBeNull();
  });

  it("gives a router one output per class, plus error", () => {
    s().addNode("router", { x: 0, y: 200 });
    s().updateConfig("router", { classes: [{ id: "billing" }, { id: "other" }] });
    const { nodes, edges, types } = s();
    expect(connectionProblem({ source: "router", target: "llm_2", sourceHandle: "billing", targetHandle: "in" }, nodes, edges, types)).toBeNull();
    expect(connectionProblem({ source: "router", target: "llm_2", sourceHandle: "out", targetHandle: "in" }, nodes, edges, types)).toMatch(/no output/);
  });

  it("leaves the graph unchanged when a connection is refused", () => {
    expect(s().connect({ source: "llm_2", target: "llm", sourceHandle: "out", targetHandle: "in" })).toMatch(/cycle/);
    expect(s().edges).toHaveLength(2);
    expect(s().notice).toMatch(/refused/);
  });
});

describe("copy and paste", () => {
  it("pastes copies with fresh ids, inner edges and rewritten templates", () => {
    s().addNode("trigger", { x: 0, y: 0 });
    s().addNode("llm", { x: 200, y: 0 });
    s().addNode("llm", { x: 400, y: 0 });
    s().connect({ source: "llm", target: "llm_2", sourceHandle: "out", targetHandle: "in" });
    s().connect({ source: "trigger", target: "llm", sourceHandle: "out", targetHandle: "in" });
    s().updateConfig("llm_2", { prompt: "{{ nodes.llm.output.text }} {{ input.x }}" });
    store.setState({ nodes: s().nodes.map((n) => ({ ...n, selected: n.id !== "trigger" })) });
    const clip = s().copySelected()!;
    expect(clip.nodes.map((n) => n.id)).toEqual(["llm", "llm_2"]);
    expect(clip.edges).toHaveLength(1); // the edge from the trigger is not copied
    // Round trip through text, as the system clipboard does.
    s().paste(parseClipboard(JSON.stringify(clip))!, { x: 0, y: 100 });
    const ids = s().nodes.map((n) => n.id);
    expect(ids).toEqual(["trigger", "llm", "llm_2", "llm_3", "llm_4"]);
    expect(s().edges.at(-1)).toMatchObject({ source: "llm_3", target: "llm_4" });
    expect(s().nodes[4].data.config.prompt).toBe("{{ nodes.llm_3.output.text }} {{ input.x }}");
    expect(s().nodes[4].position).toEqual({ x: 400, y: 100 });
    expect(s().nodes.filter((n) => n.selected).map((n) => n.id)).toEqual(["llm_3", "llm_4"]);
    s().undo();
    expect(s().nodes).toHaveLength(3);
  });

  it("accepts an exported flow document as a paste", () => {
    const clip = parseClipboard(JSON.stringify({ name: "x", graph: { schema: 1, nodes: [{ id: "a", type: "llm", position: { x: 0, y: 0 }, config: {} }], edges: [] } }));
    expect(clip?.nodes).toHaveLength(1);
    expect(parseClipboard("hello")).toBeNull();
  });
});

describe("server problems", () => {
  it("maps problems onto nodes and edges", () => {
    const mapped = withProblems([
      { message: "prompt is required", node: "llm" },
      { message: "the template reads nodes.x", node: "llm" },
      { message: "trigger has no output 'x'", edge: "e1" },
      { message: "the flow has no trigger" },
    ]);
    expect(mapped.problemIndex.nodes).toEqual({ llm: ["prompt is required", "the template reads nodes.x"] });
    expect(mapped.problemIndex.edges).toEqual({ e1: ["trigger has no output 'x'"] });
    expect(mapped.problems).toHaveLength(4);
  });

  it("round-trips a graph document, keeping unknown fields", () => {
    const doc = { schema: 1, meta: { a: 1 }, nodes: [{ id: "t", type: "trigger", position: { x: 1, y: 2 }, config: { kind: "manual" }, note: "keep" }],
      edges: [{ id: "e1", source: "t", target: "o", sourceHandle: "out", targetHandle: "in" }] };
    s().applyDraft({ graph: doc, revision: 1, problems: [] });
    expect(canvasToDoc(s().nodes, s().edges, s().docExtra)).toEqual(doc);
  });

  it("summarizes the differences between versions", () => {
    const a = { schema: 1, nodes: [{ id: "t", type: "trigger", position: { x: 0, y: 0 }, config: {} }, { id: "x", type: "llm", position: { x: 0, y: 0 }, config: { prompt: "a" } }], edges: [] };
    const b = { schema: 1, nodes: [{ id: "t", type: "trigger", position: { x: 9, y: 9 }, config: {} }, { id: "x", type: "llm", position: { x: 0, y: 0 }, config: { prompt: "b" } }, { id: "y", type: "output", position: { x: 0, y: 0 }, config: {} }],
      edges: [{ id: "e1", source: "x", target: "y" }] };
    expect(diffGraphs(a, b)).toEqual({ added: ["y"], removed: [], changed: ["x"], edgesAdded: 1, edgesRemoved: 0 });
  });
});
