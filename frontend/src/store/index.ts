// One zustand store made of slices (Dify's habit): read it with narrow selectors.
import { create } from "zustand";
import { createGraphSlice, type GraphSlice } from "./graphSlice";
import { createRunSlice, type RunSlice } from "./runSlice";
import { createServerSlice, type ServerSlice } from "./serverSlice";
import { createUiSlice, type UiSlice } from "./uiSlice";

export type EditorState = GraphSlice & ServerSlice & RunSlice & UiSlice;

export const createEditorStore = () =>
  create<EditorState>()((...a) => ({
    ...createGraphSlice(...a),
    ...createServerSlice(...a),
    ...createRunSlice(...a),
    ...createUiSlice(...a),
  }));

export const useEditor = createEditorStore();

export const selectDirty = (s: EditorState) => s.editCount !== s.savedEditCount;

export const selectSelectedIds = (s: EditorState) => s.nodes.filter((n) => n.selected).map((n) => n.id);
