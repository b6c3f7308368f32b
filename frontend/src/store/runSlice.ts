// The run shown on the canvas: step statuses by node, kept live from ws/runs/<id>/.
import type { StateCreator } from "zustand";
import type { RunInfo, StepInfo } from "../types";
import type { EditorState } from "./index";

export interface RunSlice {
  run: RunInfo | null;
  steps: Record<string, StepInfo>;
  setRun: (run: RunInfo | null) => void;
  applyRunEvent: (event: { type: string; run?: RunInfo; steps?: StepInfo[] }) => void;
}

export const createRunSlice: StateCreator<EditorState, [], [], RunSlice> = (set) => ({
  run: null,
  steps: {},
  setRun: (run) =>
    set({ run, steps: Object.fromEntries((run?.steps || []).map((st) => [st.node_id, st])) }),
  applyRunEvent: (event) =>
    set((s) => {
      if (event.type === "run.snapshot" && event.run)
        return { run: event.run, steps: Object.fromEntries((event.run.steps || []).map((st) => [st.node_id, st])) };
      if (event.type === "run.update") {
        if (s.run && event.run && event.run.id !== s.run.id) return {};
        const steps = { ...s.steps };
        for (const st of event.steps || []) steps[st.node_id] = { ...steps[st.node_id], ...st };
        return { run: s.run ? { ...s.run, ...event.run } : (event.run ?? null), steps };
      }
      return {};
    }),
});
