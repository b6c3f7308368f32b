// The selected node: its id, its config form (from the type's schema), and its last run step.
import { useCallback, useMemo, useState } from "react";
import { ancestors } from "../graph";
import { templateSuggestions } from "../schema";
import { useShallow } from "zustand/react/shallow";
import { selectSelectedIds, useEditor } from "../store";
import type { JsonSchema, StepInfo } from "../types";
import { SchemaForm } from "./SchemaForm";

export function ConfigPanel({ readOnly }: { readOnly: boolean }) {
  const selectedIds = useEditor(useShallow(selectSelectedIds));
  const nodeId = selectedIds.length === 1 ? selectedIds[0] : null;
  // Narrow selectors: dragging moves the node (a new object) but leaves its data alone, so the
  // form does not re-render on every mouse move.
  const data = useEditor((s) => (nodeId ? s.nodes.find((n) => n.id === nodeId)?.data : undefined));
  const node = nodeId && data ? { id: nodeId, data } : undefined;
  const info = useEditor((s) => (data ? s.types[data.type] : undefined));
  const step = useEditor((s) => (nodeId ? s.steps[nodeId] : undefined));
  const problems = useEditor((s) => (nodeId ? s.problemIndex.nodes[nodeId] : undefined));
  const edges = useEditor((s) => s.edges);
  const inputSchema = useEditor(
    (s) => s.nodes.find((n) => n.data.type === "trigger")?.data.config.input_schema as JsonSchema | undefined,
  );
  const updateConfig = useEditor((s) => s.updateConfig);

  const suggestions = useMemo(() => {
    if (!nodeId) return [];
    const byId = new Map(useEditor.getState().nodes.map((n) => [n.id, n.data.type]));
    return templateSuggestions(
      inputSchema,
      ancestors(edges, nodeId).map((id) => ({ id, type: byId.get(id) ?? "" })),
    );
  }, [nodeId, edges, inputSchema]);

  const onChange = useCallback(
    (config: Record<string, unknown>, field: string) => node && updateConfig(node.id, config, `config:${node.id}:${field}`),
    [node?.id, updateConfig],
  );

  if (!node) {
    return (
      <div className="panel-empty">
        <p>{selectedIds.length > 1 ? `${selectedIds.length} nodes selected.` : "Select a node to configure it."}</p>
        <p className="muted small">
          Drag node types from the palette, or click one to add it. Connect an output handle (right) to an input handle (left).
          Shortcuts: Ctrl+S save, Ctrl+Z / Ctrl+Shift+Z undo/redo, Ctrl+C / Ctrl+V copy/paste, Ctrl+D duplicate,
          Delete remove, Ctrl+K find a node.
        </p>
      </div>
    );
  }
  return (
    <div className="config-panel" aria-label={`Configure ${node.id}`}>
      <div className="config-head">
        <span className="fnode-icon" style={{ background: info?.color }} aria-hidden="true">{info?.icon}</span>
        <div>
          <h2>{info?.title ?? node.data.type}</h2>
          {info && <p className="muted small">{info.help}</p>}
        </div>
      </div>
      <NodeIdField nodeId={node.id} readOnly={readOnly} />
      {problems && (
        <ul className="problem-list compact" role="alert">
          {problems.map((m, i) => <li key={i}>{m}</li>)}
        </ul>
      )}
      {step && <StepDetails step={step} />}
      {info ? (
        <fieldset disabled={readOnly} className="plain">
          <SchemaForm key={node.id} schema={info.config_schema} value={node.data.config} onChange={onChange}
            suggestions={suggestions} idPrefix={`cfg-${node.id}`} />
        </fieldset>
      ) : (
        <p className="field-error">Unknown node type {node.data.type}: it cannot be configured here.</p>
      )}
    </div>
  );
}

function NodeIdField({ nodeId, readOnly }: { nodeId: string; readOnly: boolean }) {
  const rename = useEditor((s) => s.renameNode);
  const [draft, setDraft] = useState(nodeId);
  const [error, setError] = useState<string | null>(null);
  const [last, setLast] = useState(nodeId);
  if (last !== nodeId) {
    setLast(nodeId);
    setDraft(nodeId);
    setError(null);
  }
  const apply = () => setError(rename(nodeId, draft.trim()));
  return (
    <div className="field">
      <label htmlFor="node-id-input">Node id</label>
      <input id="node-id-input" className="mono" value={draft} disabled={readOnly}
        onChange={(e) => setDraft(e.target.value)} onBlur={apply}
        onKeyDown={(e) => e.key === "Enter" && apply()} />
      <p className="help">Templates read this node as <code>{`{{ nodes.${nodeId}.output }}`}</code>.</p>
      {error && <p className="field-error" role="alert">{error}</p>}
    </div>
  );
}

function json(v: unknown) {
  return v === undefined || v === null ? "—" : typeof v === "string" ? v : JSON.stringify(v, null, 2);
}

export function StepDetails({ step }: { step: StepInfo }) {
  return (
    <section className="step-details" aria-label="Last run of this node">
      <h3>
        Run step: <span className={`fnode-status st-${step.status}`}>{step.status}</span>
      </h3>
      <dl className="step-stats">
        <div><dt>Attempts</dt><dd>{step.attempt ?? "—"}</dd></div>
        <div><dt>Latency</dt><dd>{step.latency_ms != null ? `${Math.round(step.latency_ms)} ms` : "—"}</dd></div>
        <div><dt>Tokens</dt><dd>{(step.tokens_in ?? 0) + (step.tokens_out ?? 0) ? `${step.tokens_in} in / ${step.tokens_out} out` : "—"}</dd></div>
        <div><dt>Cost</dt><dd>{step.cost_usd && Number(step.cost_usd) ? `$${Number(step.cost_usd).toFixed(4)}` : "—"}</dd></div>
      </dl>
      {step.error != null && (
        <>
          <h4>Error</h4>
          <pre className="step-json error">{json(step.error)}</pre>
        </>
      )}
      {step.inputs !== undefined && (
        <details>
          <summary>Inputs</summary>
          <pre className="step-json">{json(step.inputs)}</pre>
        </details>
      )}
      {step.output !== undefined && (
        <details open>
          <summary>Output</summary>
          <pre className="step-json">{json(step.output)}</pre>
        </details>
      )}
      {Array.isArray(step.attempts) && step.attempts.length > 1 && (
        <details>
          <summary>Attempts ({step.attempts.length})</summary>
          <pre className="step-json">{json(step.attempts)}</pre>
        </details>
      )}
    </section>
  );
}
