// The graph being edited, with undo/redo: every edit goes through ``commit`` (or ``checkpoint``
// before a gesture such as a drag), which keeps the state before it on the undo stack.
import { applyEdgeChanges, applyNodeChanges, type EdgeChange, type NodeChange } from "@xyflow/react";
import type { StateCreator } from "zustand";
import {
  canvasTypeOf,
  connectionProblem,
  pasteInto,
  toClipboard,
  uniqueEdgeId,
  uniqueNodeId,
  type ClipboardDoc,
  type ConnectionLike,
  type FlowEdge,
  type FlowNode,
} from "../graph";
import { autoLayout } from "../layout";
import { defaultConfig } from "../schema";
import type { NodeTypeInfo } from "../types";
import type { EditorState } from "./index";

const HISTORY_LIMIT = 200;

interface Snapshot {
  nodes: FlowNode[];
  edges: FlowEdge[];
}

export interface GraphSlice {
  nodes: FlowNode[];
  edges: FlowEdge[];
  types: Record<string, NodeTypeInfo>;
  past: Snapshot[];
  future: Snapshot[];
  /** Bumped by every edit; the save slice compares it with the last saved value (dirty). */
  editCount: number;
  /** Coalesces rapid edits of one field (typing) into one undo step. */
  lastCommitKey: string | null;
  lastCommitAt: number;
  notice: string | null;

  setTypes: (types: NodeTypeInfo[]) => void;
  setGraph: (nodes: FlowNode[], edges: FlowEdge[]) => void;
  checkpoint: (key?: string) => void;
  commit: (change: (s: EditorState) => Partial<Snapshot>, key?: string) => void;
  onNodesChange: (changes: NodeChange<FlowNode>[]) => void;
  onEdgesChange: (changes: EdgeChange<FlowEdge>[]) => void;
  addNode: (type: string, position: { x: number; y: number }) => string | null;
  connect: (c: ConnectionLike) => string | null;
  updateConfig: (nodeId: string, config: Record<string, unknown>, key?: string) => void;
  renameNode: (nodeId: string, newId: string) => string | null;
  deleteSelected: () => void;
  duplicateSelected: () => void;
  copySelected: () => ClipboardDoc | null;
  paste: (clip: ClipboardDoc, offset?: { x: number; y: number }) => void;
  layout: () => void;
  selectOnly: (nodeId: string | null) => void;
  /** Moves a node during a drag outside React Flow (overview); ``null`` ends the drag (an edit). */
  moveNode: (nodeId: string, position: { x: number; y: number } | null) => void;
  undo: () => void;
  redo: () => void;
  setNotice: (notice: string | null) => void;
}

const snap = (s: { nodes: FlowNode[]; edges: FlowEdge[] }): Snapshot => ({ nodes: s.nodes, edges: s.edges });

export const createGraphSlice: StateCreator<EditorState, [], [], GraphSlice> = (set, get) => ({
  nodes: [],
  edges: [],
  types: {},
  past: [],
  future: [],
  editCount: 0,
  lastCommitKey: null,
  lastCommitAt: 0,
  notice: null,

  setTypes: (types) => set({ types: Object.fromEntries(types.map((t) => [t.type, t])) }),

  setGraph: (nodes, edges) => set({ nodes, edges, past: [], future: [], lastCommitKey: null }),

  checkpoint: (key) => {
    const s = get();
    const now = Date.now();
    if (key && key === s.lastCommitKey && now - s.lastCommitAt < 1200) {
      set({ lastCommitAt: now });
      return;
    }
    set({
      past: [...s.past.slice(-HISTORY_LIMIT + 1), snap(s)],
      future: [],
      lastCommitKey: key ?? null,
      lastCommitAt: now,
    });
  },

  commit: (change, key) => {
    get().checkpoint(key);
    const patch = change(get());
    set((s) => ({ ...patch, editCount: s.editCount + 1 }));
  },

  onNodesChange: (changes) => {
    // Removal goes through deleteSelected (undoable); moves are checkpointed at drag start.
    const kept = changes.filter((c) => c.type !== "remove");
    if (!kept.length) return;
    const moved = kept.some((c) => c.type === "position" && c.position && !c.dragging);
    set((s) => ({
      nodes: applyNodeChanges(kept, s.nodes),
      editCount: moved ? s.editCount + 1 : s.editCount,
    }));
  },

  onEdgesChange: (changes) => {
    const kept = changes.filter((c) => c.type !== "remove");
    if (kept.length) set((s) => ({ edges: applyEdgeChanges(kept, s.edges) }));
  },

  addNode: (type, position) => {
    const info = get().types[type];
    if (!info) return null;
    const taken = new Set(get().nodes.map((n) => n.id));
    const id = uniqueNodeId(type, taken);
    const node: FlowNode = {
      id,
      type: canvasTypeOf(type),
      position,
      selected: true,
      data: { type, config: defaultConfig(info.config_schema) },
    };
    get().commit((s) => ({
      nodes: [...s.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), node],
      edges: s.edges.map((e) => (e.selected ? { ...e, selected: false } : e)),
    }));
    return id;
  },

  connect: (c) => {
    const s = get();
    const problem = connectionProblem(c, s.nodes, s.edges, s.types);
    if (problem) {
      set({ notice: `Connection refused: ${problem}` });
      return problem;
    }
    const id = uniqueEdgeId(new Set(s.edges.map((e) => e.id)));
    s.commit((st) => ({
      edges: [
        ...st.edges,
        {
          id,
          source: c.source!,
          target: c.target!,
          sourceHandle: c.sourceHandle || "out",
          targetHandle: c.targetHandle || "in",
        },
      ],
    }));
    return null;
  },

  updateConfig: (nodeId, config, key) => {
    get().commit(
      (s) => ({ nodes: s.nodes.map((n) => (n.id === nodeId ? { ...n, data: { ...n.data, config } } : n)) }),
      key ?? `config:${nodeId}`,
    );
  },

  renameNode: (nodeId, newId) => {
    const s = get();
    if (nodeId === newId) return null;
    if (!/^[a-z][a-z0-9_]{0,62}$/.test(newId)) return "ids are lower case letters, digits and _, starting with a letter";
    if (s.nodes.some((n) => n.id === newId)) return `${newId} is already used`;
    const re = new RegExp(`nodes\\.${nodeId}\\b`, "g");
    const rewrite = (v: unknown): unknown =>
      typeof v === "string"
        ? v.replace(re, `nodes.${newId}`)
        : Array.isArray(v)
          ? v.map(rewrite)
          : v && typeof v === "object"
            ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, rewrite(x)]))
            : v;
    s.commit((st) => ({
      nodes: st.nodes.map((n) =>
        n.id === nodeId
          ? { ...n, id: newId }
          : { ...n, data: { ...n.data, config: rewrite(n.data.config) as Record<string, unknown> } },
      ),
      edges: st.edges.map((e) => ({
        ...e,
        source: e.source === nodeId ? newId : e.source,
        target: e.target === nodeId ? newId : e.target,
      })),
    }));
    return null;
  },

  deleteSelected: () => {
    const s = get();
    const gone = new Set(s.nodes.filter((n) => n.selected).map((n) => n.id));
    const edgesGone = s.edges.filter((e) => e.selected || gone.has(e.source) || gone.has(e.target));
    if (!gone.size && !edgesGone.length) return;
    const edgeIds = new Set(edgesGone.map((e) => e.id));
    s.commit((st) => ({
      nodes: st.nodes.filter((n) => !gone.has(n.id)),
      edges: st.edges.filter((e) => !edgeIds.has(e.id)),
    }));
  },

  duplicateSelected: () => {
    const clip = get().copySelected();
    if (clip) get().paste(clip, { x: 40, y: 40 });
  },

  copySelected: () => {
    const s = get();
    const chosen = s.nodes.filter((n) => n.selected);
    return chosen.length ? toClipboard(chosen, s.edges) : null;
  },

  paste: (clip, offset = { x: 40, y: 40 }) => {
    const s = get();
    const added = pasteInto(clip, s.nodes, s.edges, offset);
    if (!added.nodes.length) return;
    s.commit((st) => ({
      nodes: [...st.nodes.map((n) => (n.selected ? { ...n, selected: false } : n)), ...added.nodes],
      edges: [...st.edges, ...added.edges],
    }));
  },

  layout: () => get().commit((s) => ({ nodes: autoLayout(s.nodes, s.edges) })),

  selectOnly: (nodeId) =>
    set((s) => ({
      nodes: s.nodes.map((n) =>
        (n.id === nodeId) !== !!n.selected ? { ...n, selected: n.id === nodeId } : n,
      ),
      edges: s.edges.map((e) => (e.selected ? { ...e, selected: false } : e)),
    })),

  moveNode: (nodeId, position) =>
    set((s) =>
      position
        ? { nodes: s.nodes.map((n) => (n.id === nodeId ? { ...n, position } : n)) }
        : { editCount: s.editCount + 1 },
    ),

  undo: () => {
    const s = get();
    const prev = s.past[s.past.length - 1];
    if (!prev) return;
    set({
      past: s.past.slice(0, -1),
      future: [snap(s), ...s.future],
      nodes: prev.nodes,
      edges: prev.edges,
      editCount: s.editCount + 1,
      lastCommitKey: null,
    });
  },

  redo: () => {
    const s = get();
    const next = s.future[0];
    if (!next) return;
    set({
      future: s.future.slice(1),
      past: [...s.past, snap(s)],
      nodes: next.nodes,
      edges: next.edges,
      editCount: s.editCount + 1,
      lastCommitKey: null,
    });
  },

  setNotice: (notice) => set({ notice }),
});
