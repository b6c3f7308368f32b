import type { StateCreator } from "zustand";
import type { EditorState } from "./index";

export type SidePanel = "config" | "problems" | "versions" | "runs";

export interface UiSlice {
  panel: SidePanel;
  dialog: null | "publish" | "run" | "search";
  focusNode: { id: string; at: number } | null;
  setPanel: (panel: SidePanel) => void;
  setDialog: (dialog: UiSlice["dialog"]) => void;
  requestFocus: (id: string) => void;
}

export const createUiSlice: StateCreator<EditorState, [], [], UiSlice> = (set) => ({
  panel: "config",
  dialog: null,
  focusNode: null,
  setPanel: (panel) => set({ panel }),
  setDialog: (dialog) => set({ dialog }),
  requestFocus: (id) => set({ focusNode: { id, at: Date.now() } }),
});
