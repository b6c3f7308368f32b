// Modal dialogs: publish (with a note), run (inputs from the trigger's input schema), node search.
import { useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { api } from "../api";
import { watchRun } from "../runs";
import { validate } from "../schema";
import { selectDirty, useEditor } from "../store";
import type { JsonSchema, RunInfo } from "../types";
import { SchemaForm } from "./SchemaForm";

function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const first = ref.current?.querySelector<HTMLElement>("input, textarea, select, button");
    first?.focus();
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="modal" role="dialog" aria-modal="true" aria-label={title} ref={ref}>
        <h2>{title}</h2>
        {children}
      </div>
    </div>
  );
}

export function PublishDialog() {
  const close = () => useEditor.getState().setDialog(null);
  const publish = useEditor((s) => s.publish);
  const problems = useEditor((s) => s.problems.length);
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <Modal title="Publish a new version" onClose={close}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          const ok = await publish(note);
          setBusy(false);
          if (ok) close();
          else useEditor.getState().setPanel("problems");
        }}
      >
        <p className="muted small">Publishing saves the draft and freezes it as an immutable version that runs use.</p>
        {problems > 0 && <p className="field-error">The draft has {problems} problem(s); publishing will be refused until they are fixed.</p>}
        <label htmlFor="publish-note">Note</label>
        <input id="publish-note" value={note} maxLength={500} placeholder="What changed?" onChange={(e) => setNote(e.target.value)} />
        <div className="modal-actions">
          <button type="button" className="button" onClick={close}>Cancel</button>
          <button type="submit" className="button primary" disabled={busy}>{busy ? "Publishing…" : "Publish"}</button>
        </div>
      </form>
    </Modal>
  );
}

export function RunDialog() {
  const close = () => useEditor.getState().setDialog(null);
  const trigger = useEditor((s) => s.nodes.find((n) => n.data.type === "trigger"));
  const latest = useEditor((s) => s.latestVersion);
  const flowId = useEditor((s) => s.flowId);
  const schema = useMemo<JsonSchema>(
    () => (trigger?.data.config.input_schema as JsonSchema) || { type: "object", properties: {} },
    [trigger],
  );
  const [inputs, setInputs] = useState<Record<string, unknown>>({});
  const [version, setVersion] = useState<"draft" | number>("draft");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const errors = validate({ ...schema, type: "object" }, inputs);

  const start = async (e: React.FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const s = useEditor.getState();
    if (version === "draft" && selectDirty(s) && !(await s.save())) {
      setBusy(false);
      setError("Save the draft first.");
      return;
    }
    try {
      const run = await api<RunInfo>("POST", `flows/${flowId}/runs/`, { inputs, version });
      s.setRun({ ...run, steps: run.steps ?? [] });
      s.setPanel("runs");
      watchRun(run.id);
      close();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Modal title="Run this flow" onClose={close}>
      <form onSubmit={start}>
        {!trigger && <p className="field-error">Add a Trigger node first: runs start there.</p>}
        <label htmlFor="run-version">Version</label>
        <select id="run-version" value={String(version)} onChange={(e) => setVersion(e.target.value === "draft" ? "draft" : Number(e.target.value))}>
          <option value="draft">Draft (test run)</option>
          {latest && <option value={latest}>Published v{latest}</option>}
        </select>
        <h3 className="small">Inputs</h3>
        {Object.keys(schema.properties || {}).length ? (
          <SchemaForm schema={schema} value={inputs} onChange={(v) => setInputs(v)} suggestions={[]} idPrefix="run-input" />
        ) : (
          <p className="muted small">The trigger's input schema declares no inputs.</p>
        )}
        {error && <p className="field-error" role="alert">{error}</p>}
        <div className="modal-actions">
          <button type="button" className="button" onClick={close}>Cancel</button>
          <button type="submit" className="button primary" disabled={busy || !trigger || errors.length > 0}>
            {busy ? "Starting…" : "Start run"}
          </button>
        </div>
      </form>
    </Modal>
  );
}

export function SearchDialog() {
  const close = () => useEditor.getState().setDialog(null);
  const nodes = useEditor((s) => s.nodes);
  const types = useEditor((s) => s.types);
  const [q, setQ] = useState("");
  const [active, setActive] = useState(0);
  const matches = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return nodes
      .filter((n) => {
        if (!needle) return true;
        const label = String(n.data.config.label ?? n.data.config.text ?? "");
        return `${n.id} ${n.data.type} ${types[n.data.type]?.title ?? ""} ${label}`.toLowerCase().includes(needle);
      })
      .slice(0, 30);
  }, [q, nodes, types]);
  const go = (id: string) => {
    useEditor.getState().requestFocus(id);
    close();
  };
  return (
    <Modal title="Find a node" onClose={close}>
      <input aria-label="Node id, type or label" placeholder="Node id, type or label" value={q}
        onChange={(e) => { setQ(e.target.value); setActive(0); }}
        onKeyDown={(e) => {
          if (e.key === "ArrowDown") setActive((a) => Math.min(a + 1, matches.length - 1));
          if (e.key === "ArrowUp") setActive((a) => Math.max(a - 1, 0));
          if (e.key === "Enter" && matches[active]) go(matches[active].id);
        }} />
      <ul className="search-results" role="listbox" aria-label="Matching nodes">
        {matches.map((n, i) => (
          <li key={n.id} role="option" aria-selected={i === active}>
            <button type="button" className={i === active ? "active" : ""} onClick={() => go(n.id)}>
              <code>{n.id}</code> <span className="muted small">{types[n.data.type]?.title ?? n.data.type}</span>
            </button>
          </li>
        ))}
        {!matches.length && <li className="muted small">No node matches.</li>}
      </ul>
    </Modal>
  );
}
