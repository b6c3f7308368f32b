import { ReactFlowProvider, useReactFlow } from "@xyflow/react";
import { useCallback, useEffect, useRef } from "react";
import { Canvas, useFitAll } from "./components/Canvas";
import { ConfigPanel } from "./components/ConfigPanel";
import { PublishDialog, RunDialog, SearchDialog } from "./components/Dialogs";
import { Palette } from "./components/Palette";
import { ProblemsPanel, RunsPanel, VersionsPanel } from "./components/Panels";
import { parseClipboard, type ClipboardDoc } from "./graph";
import { selectDirty, useEditor } from "./store";
import type { Bootstrap } from "./store/serverSlice";
import type { SidePanel } from "./store/uiSlice";

const LOCAL_CLIPBOARD = "agent-flow-studio.clipboard";

function isTyping(target: EventTarget | null) {
  const el = target as HTMLElement | null;
  return !!el && (el.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(el.tagName));
}

export function App(props: { flowId: number; canRun: boolean; canEdit: boolean }) {
  return (
    <ReactFlowProvider>
      <Editor {...props} />
    </ReactFlowProvider>
  );
}

function Editor({ flowId, canRun, canEdit }: { flowId: number; canRun: boolean; canEdit: boolean }) {
  const load = useEditor((s) => s.load);
  const loading = useEditor((s) => s.loading);
  const loadError = useEditor((s) => s.loadError);
  const dialog = useEditor((s) => s.dialog);
  const panel = useEditor((s) => s.panel);
  const problemCount = useEditor((s) => s.problems.length);
  const { screenToFlowPosition } = useReactFlow();
  const fitAll = useFitAll();
  const pastePending = useRef(false);

  useEffect(() => {
    const script = document.getElementById("editor-bootstrap");
    load(flowId, script ? (JSON.parse(script.textContent || "null") as Bootstrap) : null);
  }, [flowId, load]);

  useEffect(() => {
    const onBeforeUnload = (e: BeforeUnloadEvent) => {
      if (selectDirty(useEditor.getState())) {
        e.preventDefault();
        e.returnValue = "";
      }
    };
    window.addEventListener("beforeunload", onBeforeUnload);
    return () => window.removeEventListener("beforeunload", onBeforeUnload);
  }, []);

  const viewCenter = useCallback(() => {
    const el = document.querySelector(".canvas");
    const r = el?.getBoundingClientRect();
    const p = screenToFlowPosition({ x: (r?.left ?? 0) + (r?.width ?? 800) / 2, y: (r?.top ?? 0) + (r?.height ?? 600) / 2 });
    return { x: Math.round(p.x - 100), y: Math.round(p.y - 30) };
  }, [screenToFlowPosition]);

  const addAtCenter = useCallback(
    (type: string) => {
      const s = useEditor.getState();
      // Stagger repeated clicks so the new nodes do not pile up.
      const c = viewCenter();
      const n = s.nodes.filter((x) => Math.abs(x.position.x - c.x) < 30 && Math.abs(x.position.y - c.y) < 30).length;
      s.addNode(type, { x: c.x + n * 30, y: c.y + n * 30 });
    },
    [viewCenter],
  );

  const pasteDoc = useCallback(
    (clip: ClipboardDoc) => {
      // Paste centred on the view, keeping the copied nodes' layout.
      const xs = clip.nodes.map((n) => n.position?.x ?? 0);
      const ys = clip.nodes.map((n) => n.position?.y ?? 0);
      const c = viewCenter();
      useEditor.getState().paste(clip, { x: c.x - Math.min(...xs) + 20, y: c.y - Math.min(...ys) + 20 });
    },
    [viewCenter],
  );

  useEffect(() => {
    if (!canEdit) return;
    const onCopy = (e: ClipboardEvent) => {
      if (isTyping(e.target) || document.querySelector(".modal")) return;
      const clip = useEditor.getState().copySelected();
      if (!clip) return;
      const text = JSON.stringify(clip);
      e.clipboardData?.setData("text/plain", text);
      e.preventDefault();
      localStorage.setItem(LOCAL_CLIPBOARD, text);
      useEditor.getState().setStatus(`Copied ${clip.nodes.length} node(s)`);
    };
    const onPaste = (e: ClipboardEvent) => {
      if (isTyping(e.target) || document.querySelector(".modal")) return;
      const clip = parseClipboard(e.clipboardData?.getData("text/plain") ?? "");
      pastePending.current = false;
      const fallback = parseClipboard(localStorage.getItem(LOCAL_CLIPBOARD) ?? "");
      if (clip || fallback) {
        e.preventDefault();
        pasteDoc((clip || fallback)!);
      }
    };
    const onKey = (e: KeyboardEvent) => {
      const s = useEditor.getState();
      const mod = e.ctrlKey || e.metaKey;
      const key = e.key.toLowerCase();
      if (mod && key === "s") {
        e.preventDefault();
        s.save();
        return;
      }
      if (isTyping(e.target) || s.dialog) return;
      if (mod && key === "z") {
        e.preventDefault();
        if (e.shiftKey) s.redo();
        else s.undo();
      } else if (mod && key === "y") {
        e.preventDefault();
        s.redo();
      } else if (mod && key === "d") {
        e.preventDefault();
        s.duplicateSelected();
      } else if (mod && key === "k") {
        e.preventDefault();
        s.setDialog("search");
      } else if (mod && key === "c") {
        // The copy event fills the system clipboard; keep a same-origin copy too (other tabs/flows).
        const clip = s.copySelected();
        if (clip) localStorage.setItem(LOCAL_CLIPBOARD, JSON.stringify(clip));
      } else if (mod && key === "v") {
        // If no paste event arrives (clipboard access denied), paste the same-origin copy.
        pastePending.current = true;
        setTimeout(() => {
          if (!pastePending.current) return;
          pastePending.current = false;
          const clip = parseClipboard(localStorage.getItem(LOCAL_CLIPBOARD) ?? "");
          if (clip) pasteDoc(clip);
        }, 80);
      } else if (key === "delete" || key === "backspace") {
        // Only from the canvas (or nowhere in particular): Backspace on a button deletes nothing.
        const el = e.target as HTMLElement | null;
        if (el && el !== document.body && !el.closest(".canvas")) return;
        e.preventDefault();
        s.deleteSelected();
      } else if (key === "escape") {
        s.selectOnly(null);
      }
    };
    document.addEventListener("copy", onCopy);
    document.addEventListener("paste", onPaste);
    window.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("copy", onCopy);
      document.removeEventListener("paste", onPaste);
      window.removeEventListener("keydown", onKey);
    };
  }, [canEdit, pasteDoc]);

  if (loadError) {
    return (
      <div className="editor-error" role="alert">
        <h1>The editor could not load this flow</h1>
        <p>{loadError}</p>
        <a className="button" href="/flows/">Back to flows</a>
      </div>
    );
  }

  return (
    <div className="editor" aria-busy={loading}>
      <Toolbar canRun={canRun} canEdit={canEdit} onFit={fitAll} />
      <ConflictBanner />
      <div className="editor-body">
        <Palette onAdd={addAtCenter} disabled={!canEdit || loading} />
        <div className="canvas-wrap">
          {loading ? <div className="canvas-loading" role="status">Loading the flow…</div> : <Canvas readOnly={!canEdit} />}
          <Notice />
        </div>
        <aside className="side" aria-label="Details">
          <div className="tabs" role="tablist">
            {(
              [
                ["config", "Config"],
                ["problems", `Problems${problemCount ? ` (${problemCount})` : ""}`],
                ["versions", "Versions"],
                ["runs", "Runs"],
              ] as [SidePanel, string][]
            ).map(([id, label]) => (
              <button key={id} type="button" role="tab" id={`tab-${id}`} aria-selected={panel === id}
                aria-controls={`panel-${id}`} className={`${panel === id ? "active" : ""}${id === "problems" && problemCount ? " warn" : ""}`}
                onClick={() => useEditor.getState().setPanel(id)}>
                {label}
              </button>
            ))}
          </div>
          <div className="side-body" role="tabpanel" id={`panel-${panel}`} aria-labelledby={`tab-${panel}`}>
            {panel === "config" && <ConfigPanel readOnly={!canEdit} />}
            {panel === "problems" && <ProblemsPanel />}
            {panel === "versions" && !loading && <VersionsPanel canEdit={canEdit} />}
            {panel === "runs" && !loading && <RunsPanel canRun={canRun} />}
          </div>
        </aside>
      </div>
      {dialog === "publish" && <PublishDialog />}
      {dialog === "run" && <RunDialog />}
      {dialog === "search" && <SearchDialog />}
    </div>
  );
}

function Toolbar({ canRun, canEdit, onFit }: { canRun: boolean; canEdit: boolean; onFit: () => void }) {
  const name = useEditor((s) => s.flowName);
  const dirty = useEditor(selectDirty);
  const saving = useEditor((s) => s.saving);
  const status = useEditor((s) => s.status);
  const canUndo = useEditor((s) => s.past.length > 0);
  const canRedo = useEditor((s) => s.future.length > 0);
  const latest = useEditor((s) => s.latestVersion);
  const s = useEditor.getState;
  return (
    <header className="editor-toolbar">
      <a href="/flows/" className="back" aria-label="Back to flows">←</a>
      <h1 className="flow-name">{name || "…"}</h1>
      <span className={`save-state${dirty ? " dirty" : ""}`} data-dirty={dirty ? "true" : "false"} role="status">
        {saving ? "Saving…" : dirty ? "● Unsaved changes" : status || "All changes saved"}
      </span>
      {latest && <span className="badge">v{latest} live</span>}
      <div className="toolbar-group" role="toolbar" aria-label="Edit">
        <button type="button" className="button small" disabled={!canUndo || !canEdit} onClick={() => s().undo()} title="Undo (Ctrl+Z)">Undo</button>
        <button type="button" className="button small" disabled={!canRedo || !canEdit} onClick={() => s().redo()} title="Redo (Ctrl+Shift+Z)">Redo</button>
        <button type="button" className="button small" disabled={!canEdit} onClick={() => { s().layout(); setTimeout(onFit, 50); }} title="Arrange the nodes left to right">Auto-layout</button>
        <button type="button" className="button small" onClick={onFit}>Fit view</button>
        <button type="button" className="button small" onClick={() => s().setDialog("search")} title="Find a node (Ctrl+K)">Find</button>
      </div>
      <div className="toolbar-group" role="toolbar" aria-label="Flow">
        {canEdit && <button type="button" className="button small" disabled={saving} onClick={() => s().save()} title="Save (Ctrl+S)">Save</button>}
        {canEdit && <button type="button" className="button small" onClick={() => s().setDialog("publish")}>Publish…</button>}
        {canRun && <button type="button" className="button small primary" onClick={() => s().setDialog("run")}>Run…</button>}
      </div>
    </header>
  );
}

function ConflictBanner() {
  const conflict = useEditor((s) => s.conflict);
  if (!conflict) return null;
  return (
    <div className="conflict-banner" role="alert">
      <strong>Not saved.</strong> {conflict}
    </div>
  );
}

function Notice() {
  const notice = useEditor((s) => s.notice);
  useEffect(() => {
    if (!notice) return;
    const t = setTimeout(() => useEditor.getState().setNotice(null), 3500);
    return () => clearTimeout(t);
  }, [notice]);
  return notice ? <div className="notice" role="status">{notice}</div> : null;
}
