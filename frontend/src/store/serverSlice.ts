// The draft on the server: load, save (revision checked: a 409 means someone saved since),
// publish, versions; server problems mapped onto nodes and edges.
import type { StateCreator } from "zustand";
import { api, ApiError } from "../api";
import { canvasToDoc, docToCanvas } from "../graph";
import type { GraphDoc, NodeTypeInfo, Problem } from "../types";
import type { EditorState } from "./index";

export interface VersionInfo {
  number: number;
  sha256: string;
  note: string;
  created_at: string;
  created_by: string | null;
}

export interface Bootstrap {
  name: string;
  latest_version: number | null;
  webhook_path: string;
  has_webhook_secret: boolean;
  graph: GraphDoc;
  revision: number;
  types: NodeTypeInfo[];
}

export interface ServerSlice {
  flowId: number;
  flowName: string;
  revision: number;
  savedEditCount: number;
  problems: Problem[];
  problemIndex: { nodes: Record<string, string[]>; edges: Record<string, string[]> };
  loading: boolean;
  loadError: string | null;
  saving: boolean;
  conflict: string | null;
  status: string | null;
  latestVersion: number | null;
  webhookPath: string;
  hasWebhookSecret: boolean;
  docExtra: Record<string, unknown>;

  load: (flowId: number, bootstrap?: Bootstrap | null) => Promise<void>;
  save: () => Promise<boolean>;
  publish: (note: string) => Promise<boolean>;
  applyDraft: (draft: { graph: GraphDoc; revision: number; problems: Problem[] }) => void;
  setStatus: (status: string | null) => void;
  setWebhookSecret: (secret: string) => Promise<void>;
}

interface FlowInfo {
  name: string;
  latest_version: number | null;
  webhook_path: string;
  has_webhook_secret: boolean;
}

function flowFields(flow: FlowInfo) {
  return {
    flowName: flow.name,
    latestVersion: flow.latest_version,
    webhookPath: flow.webhook_path,
    hasWebhookSecret: flow.has_webhook_secret,
  };
}

export function problemsByNode(problems: Problem[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const p of problems) if (p.node) (out[p.node] ||= []).push(p.message);
  return out;
}

export function problemsByEdge(problems: Problem[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const p of problems) if (p.edge) (out[p.edge] ||= []).push(p.message);
  return out;
}

export function withProblems(problems: Problem[]) {
  return { problems, problemIndex: { nodes: problemsByNode(problems), edges: problemsByEdge(problems) } };
}

export const createServerSlice: StateCreator<EditorState, [], [], ServerSlice> = (set, get) => ({
  flowId: 0,
  flowName: "",
  revision: 0,
  savedEditCount: 0,
  problems: [],
  problemIndex: { nodes: {}, edges: {} },
  loading: true,
  loadError: null,
  saving: false,
  conflict: null,
  status: null,
  latestVersion: null,
  webhookPath: "",
  hasWebhookSecret: false,
  docExtra: {},

  load: async (flowId, bootstrap) => {
    set({ flowId, loading: true, loadError: null });
    try {
      if (bootstrap) {
        // The page carried the draft and the registry: draw now, ask for the problems after.
        get().setTypes(bootstrap.types);
        set(flowFields(bootstrap));
        get().applyDraft({ graph: bootstrap.graph, revision: bootstrap.revision, problems: [] });
        set({ loading: false });
        const draft = await api<{ revision: number; problems: Problem[] }>("GET", `flows/${flowId}/draft/`);
        if (draft.revision === get().revision) set(withProblems(draft.problems));
        return;
      }
      const [types, flow, draft] = await Promise.all([
        api<{ results: NodeTypeInfo[] }>("GET", "node-types/"),
        api<FlowInfo>("GET", `flows/${flowId}/`),
        api<{ graph: GraphDoc; revision: number; problems: Problem[] }>("GET", `flows/${flowId}/draft/`),
      ]);
      get().setTypes(types.results);
      set(flowFields(flow));
      get().applyDraft(draft);
      set({ loading: false });
    } catch (e) {
      if (get().loading) set({ loading: false, loadError: (e as Error).message });
      else set({ status: `Could not check the draft: ${(e as Error).message}` });
    }
  },

  setWebhookSecret: async (secret) => {
    // An empty secret stops requiring signatures. The value is never read back.
    const flow = await api<FlowInfo>("PATCH", `flows/${get().flowId}/`, { webhook_secret: secret });
    set(flowFields(flow));
  },

  applyDraft: (draft) => {
    const { schema: _s, nodes: _n, edges: _e, ...extra } = draft.graph;
    const { nodes, edges } = docToCanvas(draft.graph);
    get().setGraph(nodes, edges);
    set((s) => ({
      revision: draft.revision,
      ...withProblems(draft.problems),
      docExtra: extra,
      savedEditCount: s.editCount,
      conflict: null,
    }));
  },

  save: async () => {
    const s = get();
    if (s.saving) return false;
    const editCount = s.editCount;
    set({ saving: true, status: "Saving…" });
    try {
      const graph = canvasToDoc(s.nodes, s.edges, s.docExtra);
      const res = await api<{ revision: number; problems: Problem[] }>("PUT", `flows/${s.flowId}/draft/`, {
        graph,
        revision: s.revision,
      });
      set({
        revision: res.revision,
        ...withProblems(res.problems),
        savedEditCount: editCount,
        saving: false,
        conflict: null,
        status: res.problems.length
          ? `Saved with ${res.problems.length} problem${res.problems.length > 1 ? "s" : ""}`
          : "Saved",
      });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        set({
          saving: false,
          status: null,
          conflict:
            "Someone else saved this flow since you opened it. Your changes are kept here, unsaved; " +
            "reload to see theirs (copy your nodes first with Ctrl+C to paste them back).",
        });
      } else {
        set({ saving: false, status: `Not saved: ${(e as Error).message}` });
      }
      return false;
    }
  },

  publish: async (note) => {
    const s = get();
    if (s.editCount !== s.savedEditCount && !(await s.save())) return false;
    try {
      const res = await api<{ version: number }>("POST", `flows/${get().flowId}/publish/`, { note });
      set({ latestVersion: res.version, status: `Published version ${res.version}` });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.code === "graph_problems") {
        set({ ...withProblems(e.details as Problem[]), status: "Not published: fix the problems first" });
      } else {
        set({ status: `Not published: ${(e as Error).message}` });
      }
      return false;
    }
  },

  setStatus: (status) => set({ status }),
});
