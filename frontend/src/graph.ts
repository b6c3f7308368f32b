// Pure graph helpers: doc <-> canvas conversion, handles, connection rules, ids, clipboard.
import type { Edge, Node } from "@xyflow/react";
import type { GraphDoc, GraphEdge, GraphNode, NodeTypeInfo } from "./types";

export interface FlowNodeData extends Record<string, unknown> {
  type: string;
  config: Record<string, unknown>;
}
export type FlowNode = Node<FlowNodeData>;
export type FlowEdge = Edge;

export const NODE_ID_RE = /^[a-z][a-z0-9_]{0,62}$/;
export const CLIPBOARD_KIND = "agent-flow-studio/nodes";

export function canvasTypeOf(type: string): string {
  return type === "note" ? "note" : "flow";
}

export function docToCanvas(doc: GraphDoc): { nodes: FlowNode[]; edges: FlowEdge[] } {
  const nodes = (doc.nodes || []).map((n) => toCanvasNode(n));
  const edges = (doc.edges || []).map((e) => toCanvasEdge(e));
  return { nodes, edges };
}

export function toCanvasNode(n: GraphNode): FlowNode {
  const { id, type, position, config, ...rest } = n;
  const node: FlowNode = {
    id,
    type: canvasTypeOf(type),
    position: { x: position?.x ?? 0, y: position?.y ?? 0 },
    data: { type, config: config || {} },
  };
  if (Object.keys(rest).length) node.data.extra = rest;
  return node;
}

export function toCanvasEdge(e: GraphEdge): FlowEdge {
  return {
    id: e.id,
    source: e.source,
    target: e.target,
    sourceHandle: e.sourceHandle ?? "out",
    targetHandle: e.targetHandle ?? "in",
  };
}

export function canvasToDoc(nodes: FlowNode[], edges: FlowEdge[], base: Partial<GraphDoc> = {}): GraphDoc {
  return {
    ...base,
    schema: 1,
    nodes: nodes.map((n) => ({
      ...((n.data.extra as object) || {}),
      id: n.id,
      type: n.data.type,
      position: { x: Math.round(n.position.x), y: Math.round(n.position.y) },
      config: n.data.config,
    })),
    edges: edges.map((e) => ({
      id: e.id,
      source: e.source,
      sourceHandle: e.sourceHandle ?? "out",
      target: e.target,
      targetHandle: e.targetHandle ?? "in",
    })),
  };
}

/** Output handles of a node, as the server computes them (graph.py output_handles). */
export function outputHandles(info: NodeTypeInfo | undefined, config: Record<string, unknown>): string[] {
  if (!info) return ["out"];
  let handles = [...info.outputs];
  if (info.dynamic_outputs) {
    // The only dynamic-output type today is the router: one handle per class id.
    const classes = Array.isArray(config.classes) ? config.classes : [];
    const ids = classes.map((c: any) => (c && typeof c.id === "string" ? c.id : "")).filter(Boolean);
    handles = ids.length ? ids : handles;
  }
  if (info.can_fail) handles.push("error");
  return handles;
}

export function inputHandles(info: NodeTypeInfo | undefined): string[] {
  return info ? [...info.inputs] : ["in"];
}

export function successors(edges: FlowEdge[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const e of edges) {
    if (!out.has(e.source)) out.set(e.source, []);
    out.get(e.source)!.push(e.target);
  }
  return out;
}

export function reaches(edges: FlowEdge[], from: string, to: string): boolean {
  const next = successors(edges);
  const seen = new Set<string>();
  const stack = [from];
  while (stack.length) {
    const id = stack.pop()!;
    if (id === to) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(next.get(id) || []));
  }
  return false;
}

/** Ids of the nodes upstream of ``nodeId`` (its ancestors), nearest first. */
export function ancestors(edges: FlowEdge[], nodeId: string): string[] {
  const prev = new Map<string, string[]>();
  for (const e of edges) {
    if (!prev.has(e.target)) prev.set(e.target, []);
    prev.get(e.target)!.push(e.source);
  }
  const seen: string[] = [];
  const queue = [...(prev.get(nodeId) || [])];
  while (queue.length) {
    const id = queue.shift()!;
    if (seen.includes(id) || id === nodeId) continue;
    seen.push(id);
    queue.push(...(prev.get(id) || []));
  }
  return seen;
}

export interface ConnectionLike {
  source: string | null;
  target: string | null;
  sourceHandle?: string | null;
  targetHandle?: string | null;
}

/** Why a connection is refused, or null when it is fine. */
export function connectionProblem(
  c: ConnectionLike,
  nodes: FlowNode[],
  edges: FlowEdge[],
  types: Record<string, NodeTypeInfo>,
): string | null {
  if (!c.source || !c.target) return "incomplete connection";
  if (c.source === c.target) return "a node cannot connect to itself";
  const source = nodes.find((n) => n.id === c.source);
  const target = nodes.find((n) => n.id === c.target);
  if (!source || !target) return "unknown node";
  const sh = c.sourceHandle || "out";
  const th = c.targetHandle || "in";
  if (!outputHandles(types[source.data.type], source.data.config).includes(sh))
    return `${source.id} has no output ${sh}`;
  if (!inputHandles(types[target.data.type]).includes(th)) return `${target.id} has no input ${th}`;
  if (edges.some((e) => e.source === c.source && e.target === c.target && (e.sourceHandle || "out") === sh))
    return "these handles are already connected";
  if (reaches(edges, c.target, c.source)) return "this connection would make a cycle (use a map over a sub-flow)";
  return null;
}

export function uniqueNodeId(base: string, taken: Set<string>): string {
  let stem = base.toLowerCase().replace(/[^a-z0-9_]/g, "_").replace(/^[^a-z]+/, "");
  if (!stem) stem = "node";
  stem = stem.slice(0, 56);
  if (!taken.has(stem)) return stem;
  stem = stem.replace(/_\d+$/, "") || stem; // a copy of llm_2 is llm_3, not llm_2_2
  for (let i = 2; ; i++) {
    const id = `${stem}_${i}`;
    if (!taken.has(id)) return id;
  }
}

export function uniqueEdgeId(taken: Set<string>): string {
  for (let i = taken.size + 1; ; i++) {
    const id = `e${i}`;
    if (!taken.has(id)) return id;
  }
}

export interface ClipboardDoc {
  kind: typeof CLIPBOARD_KIND;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export function toClipboard(nodes: FlowNode[], edges: FlowEdge[]): ClipboardDoc {
  const ids = new Set(nodes.map((n) => n.id));
  const doc = canvasToDoc(
    nodes,
    edges.filter((e) => ids.has(e.source) && ids.has(e.target)),
  );
  return { kind: CLIPBOARD_KIND, nodes: doc.nodes, edges: doc.edges };
}

export function parseClipboard(text: string): ClipboardDoc | null {
  try {
    const doc = JSON.parse(text);
    if (doc && doc.kind === CLIPBOARD_KIND && Array.isArray(doc.nodes) && Array.isArray(doc.edges)) return doc;
    // A whole graph document (an export) pastes too.
    if (doc && Array.isArray(doc.nodes) && Array.isArray(doc.edges ?? []))
      return { kind: CLIPBOARD_KIND, nodes: doc.nodes, edges: doc.edges ?? [] };
    if (doc && doc.graph && Array.isArray(doc.graph.nodes))
      return { kind: CLIPBOARD_KIND, nodes: doc.graph.nodes, edges: doc.graph.edges ?? [] };
  } catch {
    /* not JSON: not ours */
  }
  return null;
}

/**
 * Nodes and edges to add for a paste: fresh ids (templates that read a pasted node are
 * rewritten to its new id), positions shifted, the pasted nodes selected.
 */
export function pasteInto(
  clip: ClipboardDoc,
  nodes: FlowNode[],
  edges: FlowEdge[],
  offset: { x: number; y: number },
): { nodes: FlowNode[]; edges: FlowEdge[] } {
  const taken = new Set(nodes.map((n) => n.id));
  const rename = new Map<string, string>();
  for (const n of clip.nodes) {
    const id = uniqueNodeId(n.id, taken);
    taken.add(id);
    rename.set(n.id, id);
  }
  const rewrite = (value: unknown): unknown => {
    if (typeof value === "string")
      return value.replace(/nodes\.([a-z][a-z0-9_]*)/g, (m, id) => (rename.has(id) ? `nodes.${rename.get(id)}` : m));
    if (Array.isArray(value)) return value.map(rewrite);
    if (value && typeof value === "object")
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewrite(v)]));
    return value;
  };
  const added = clip.nodes.map((n) => {
    const node = toCanvasNode({
      ...n,
      id: rename.get(n.id)!,
      position: { x: (n.position?.x ?? 0) + offset.x, y: (n.position?.y ?? 0) + offset.y },
      config: rewrite(n.config || {}) as Record<string, unknown>,
    });
    node.selected = true;
    return node;
  });
  const edgeIds = new Set(edges.map((e) => e.id));
  const addedEdges = clip.edges
    .filter((e) => rename.has(e.source) && rename.has(e.target))
    .map((e) => {
      const id = uniqueEdgeId(edgeIds);
      edgeIds.add(id);
      return { ...toCanvasEdge(e), id, source: rename.get(e.source)!, target: rename.get(e.target)! };
    });
  return { nodes: added, edges: addedEdges };
}

export interface DiffSummary {
  added: string[];
  removed: string[];
  changed: string[];
  edgesAdded: number;
  edgesRemoved: number;
}

export function diffGraphs(before: GraphDoc, after: GraphDoc): DiffSummary {
  const a = new Map(before.nodes.map((n) => [n.id, n]));
  const b = new Map(after.nodes.map((n) => [n.id, n]));
  const key = (e: GraphEdge) => `${e.source}:${e.sourceHandle ?? "out"}>${e.target}:${e.targetHandle ?? "in"}`;
  const ea = new Set(before.edges.map(key));
  const eb = new Set(after.edges.map(key));
  return {
    added: [...b.keys()].filter((id) => !a.has(id)),
    removed: [...a.keys()].filter((id) => !b.has(id)),
    changed: [...b.keys()].filter(
      (id) =>
        a.has(id) &&
        (a.get(id)!.type !== b.get(id)!.type ||
          JSON.stringify(a.get(id)!.config ?? {}) !== JSON.stringify(b.get(id)!.config ?? {})),
    ),
    edgesAdded: [...eb].filter((k) => !ea.has(k)).length,
    edgesRemoved: [...ea].filter((k) => !eb.has(k)).length,
  };
}
