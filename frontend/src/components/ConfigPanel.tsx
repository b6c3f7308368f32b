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
      {node.data.type === "trigger" && <TriggerAccess kind={String(node.data.config.kind ?? "manual")} readOnly={readOnly} />}
    </div>
  );
}

// How the outside world starts this flow: the webhook's URL and signing secret, or the API call.
function TriggerAccess({ kind, readOnly }: { kind: string; readOnly: boolean }) {
  const flowId = useEditor((s) => s.flowId);
  const webhookPath = useEditor((s) => s.webhookPath);
  const signed = useEditor((s) => s.hasWebhookSecret);
  const latest = useEditor((s) => s.latestVersion);
  const setWebhookSecret = useEditor((s) => s.setWebhookSecret);
  const [secret, setSecret] = useState("");
  const [note, setNote] = useState<string | null>(null);
  const origin = window.location.origin;
  const runs = latest ? `Runs use the latest published version (v${latest}).` : "Publish the flow first: calls start its latest published version.";

  const save = async (value: string) => {
    try {
      await setWebhookSecret(value);
      setSecret("");
      setNote(value ? "Secret saved: calls must now be signed." : "Signatures are no longer required.");
    } catch (e) {
      setNote((e as Error).message);
    }
  };

  if (kind === "webhook") {
    const url = `${origin}${webhookPath}`;
    return (
      <section className="trigger-access" aria-label="Webhook">
        <h3>Webhook</h3>
        <p className="muted small">POST a JSON body to this URL: the body becomes the run's inputs. {runs}</p>
        <CopyField label="Webhook URL" value={url} />
        <p className="small">
          {signed ? (
            <>Signed calls only: send <code>X-Studio-Signature: sha256=&lt;hex HMAC-SHA256 of the body&gt;</code>.</>
          ) : (
            <>Anyone with the URL can start a run. Set a secret to require an HMAC signature.</>
          )}
        </p>
        {!readOnly && (
          <form className="secret-form" onSubmit={(e) => { e.preventDefault(); if (secret) save(secret); }}>
            <label htmlFor="webhook-secret" className="visually-hidden">Signing secret</label>
            <input id="webhook-secret" type="password" autoComplete="off" value={secret} placeholder={signed ? "New signing secret" : "Signing secret"}
              onChange={(e) => setSecret(e.target.value)} />
            <button type="submit" className="button small" disabled={!secret}>{signed ? "Replace" : "Require signatures"}</button>
            {signed && <button type="button" className="button small" onClick={() => save("")}>Stop requiring</button>}
          </form>
        )}
        {note && <p className="small muted" role="status">{note}</p>}
      </section>
    );
  }
  if (kind === "api") {
    const call = `curl -X POST -H "Authorization: Bearer $STUDIO_API_KEY" -H "Content-Type: application/json" \\\n  -d '{"inputs": {}}' '${origin}/api/v1/flows/${flowId}/runs/?wait=30'`;
    return (
      <section className="trigger-access" aria-label="API">
        <h3>Start it through the API</h3>
        <p className="muted small">With a tenant API key (Settings, API keys). {runs} <code>?wait=</code> answers with the finished run.</p>
        <CopyField label="Example call" value={call} multiline />
      </section>
    );
  }
  return null;
}

function CopyField({ label, value, multiline = false }: { label: string; value: string; multiline?: boolean }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(value);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      setCopied(false);
    }
  };
  return (
    <div className="copy-field">
      <span className="visually-hidden">{label}</span>
      {multiline ? <pre className="mono" aria-label={label}>{value}</pre> : <code aria-label={label}>{value}</code>}
      <button type="button" className="button small" onClick={copy}>{copied ? "Copied" : "Copy"}</button>
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
