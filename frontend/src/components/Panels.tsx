// The side panels besides config: problems, version history, runs.
import { useEffect, useState } from "react";
import { api } from "../api";
import { canvasToDoc, diffGraphs, type DiffSummary } from "../graph";
import { selectDirty, useEditor } from "../store";
import type { VersionInfo } from "../store/serverSlice";
import type { GraphDoc, RunInfo } from "../types";
import { watchRun } from "../runs";

export function ProblemsPanel() {
  const problems = useEditor((s) => s.problems);
  const requestFocus = useEditor((s) => s.requestFocus);
  const edges = useEditor((s) => s.edges);
  if (!problems.length) return <div className="panel-empty"><p>No problems. This draft can be published.</p></div>;
  return (
    <div>
      <p className="muted small">Found by the server when the draft was last saved. Click one to go to it.</p>
      <ul className="problem-list">
        {problems.map((p, i) => {
          const target = p.node ?? (p.edge ? edges.find((e) => e.id === p.edge)?.source : undefined);
          return (
            <li key={i}>
              <button type="button" className="problem-item" disabled={!target} onClick={() => target && requestFocus(target)}>
                <strong>{p.node ? p.node : p.edge ? `edge ${p.edge}` : "flow"}</strong>: {p.message}
              </button>
            </li>
          );
        })}
      </ul>
    </div>
  );
}

export function VersionsPanel({ canEdit }: { canEdit: boolean }) {
  const flowId = useEditor((s) => s.flowId);
  const latest = useEditor((s) => s.latestVersion);
  const [versions, setVersions] = useState<VersionInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [viewing, setViewing] = useState<{ v: VersionInfo; graph: GraphDoc; diff: DiffSummary } | null>(null);

  useEffect(() => {
    api<{ results: VersionInfo[] }>("GET", `flows/${flowId}/versions/`)
      .then((r) => setVersions(r.results))
      .catch((e) => setError(e.message));
  }, [flowId, latest]);

  const view = async (v: VersionInfo) => {
    const full = await api<{ graph: GraphDoc }>("GET", `flows/${flowId}/versions/${v.number}/`);
    const s = useEditor.getState();
    setViewing({ v, graph: full.graph, diff: diffGraphs(full.graph, canvasToDoc(s.nodes, s.edges)) });
  };
  const restore = async (n: number) => {
    const s = useEditor.getState();
    const warn = selectDirty(s) ? " Your unsaved changes will be lost." : "";
    if (!window.confirm(`Restore version ${n} as the draft?${warn}`)) return;
    const draft = await api("POST", `flows/${flowId}/versions/${n}/restore/`);
    s.applyDraft(draft);
    s.setStatus(`Version ${n} restored to the draft`);
    setViewing(null);
  };

  if (error) return <p className="field-error">{error}</p>;
  if (!versions) return <p className="muted">Loading versions…</p>;
  if (!versions.length) return <div className="panel-empty"><p>Not published yet.</p><p className="muted small">Publish freezes the draft as version 1; runs use the latest version.</p></div>;
  return (
    <div>
      <ul className="version-list">
        {versions.map((v) => (
          <li key={v.number} className={viewing?.v.number === v.number ? "active" : ""}>
            <div>
              <strong>v{v.number}</strong> <span className="muted small">{new Date(v.created_at).toLocaleString()}{v.created_by ? ` · ${v.created_by}` : ""}</span>
              {v.note && <div className="small">{v.note}</div>}
            </div>
            <div className="row-actions">
              <button type="button" className="button small" aria-label={`View version ${v.number}`} onClick={() => view(v)}>View</button>
              {canEdit && <button type="button" className="button small" aria-label={`Restore version ${v.number}`} onClick={() => restore(v.number)}>Restore</button>}
            </div>
          </li>
        ))}
      </ul>
      {viewing && (
        <section className="version-view" aria-label={`Version ${viewing.v.number}`}>
          <h3>v{viewing.v.number} compared with the draft</h3>
          <p className="small">
            {viewing.graph.nodes.length} nodes, {viewing.graph.edges.length} edges · sha256 <code>{viewing.v.sha256.slice(0, 12)}</code>
          </p>
          <DiffList diff={viewing.diff} />
        </section>
      )}
    </div>
  );
}

function DiffList({ diff }: { diff: DiffSummary }) {
  const none = !diff.added.length && !diff.removed.length && !diff.changed.length && !diff.edgesAdded && !diff.edgesRemoved;
  if (none) return <p className="muted small">The draft is the same as this version.</p>;
  return (
    <ul className="diff-list small">
      {diff.added.length > 0 && <li className="added">Added in the draft: {diff.added.join(", ")}</li>}
      {diff.removed.length > 0 && <li className="removed">Removed in the draft: {diff.removed.join(", ")}</li>}
      {diff.changed.length > 0 && <li className="changed">Changed: {diff.changed.join(", ")}</li>}
      {(diff.edgesAdded > 0 || diff.edgesRemoved > 0) && <li>Edges: +{diff.edgesAdded} / −{diff.edgesRemoved}</li>}
    </ul>
  );
}

export function RunsPanel({ canRun }: { canRun: boolean }) {
  const flowId = useEditor((s) => s.flowId);
  const current = useEditor((s) => s.run);
  const [runs, setRuns] = useState<RunInfo[] | null>(null);
  const [older, setOlder] = useState<string | null>(null); // the API's `next` page, when there is one
  const [error, setError] = useState<string | null>(null);
  const refresh = () =>
    api<{ results: RunInfo[]; next: string | null }>("GET", `flows/${flowId}/runs/`)
      .then((r) => { setRuns(r.results); setOlder(r.next); })
      .catch((e) => setError(e.message));
  const loadOlder = () =>
    older &&
    api<{ results: RunInfo[]; next: string | null }>("GET", older.replace(/^\/api\/v1\//, ""))
      .then((r) => { setRuns((shown) => [...(shown ?? []), ...r.results]); setOlder(r.next); })
      .catch((e) => setError(e.message));
  useEffect(() => {
    refresh();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [flowId, current?.id, current?.status]);

  const open = async (id: number) => {
    const run = await api<RunInfo>("GET", `runs/${id}/`);
    useEditor.getState().setRun(run);
    watchRun(id);
  };
  const retry = async (id: number) => {
    try {
      await api("POST", `runs/${id}/retry/`);
      await open(id);
    } catch (e) {
      setError((e as Error).message);
    }
  };

  if (error) return <p className="field-error">{error}</p>;
  if (!runs) return <p className="muted">Loading runs…</p>;
  return (
    <div>
      {current && (
        <section className="current-run">
          <h3>Run #{current.id}: <span className={`fnode-status st-${current.status}`} data-run-status={current.status}>{current.status}</span></h3>
          {current.error != null && <pre className="step-json error">{JSON.stringify(current.error, null, 2)}</pre>}
          {current.outputs != null && current.status === "succeeded" && (
            <details open><summary>Outputs</summary><pre className="step-json">{JSON.stringify(current.outputs, null, 2)}</pre></details>
          )}
          <div className="row-actions">
            {canRun && current.status === "failed" && <button type="button" className="button small" onClick={() => retry(current.id)}>Re-run from failed</button>}
            <a className="button small" href={`/runs/${current.id}/`}>Trace</a>
            <button type="button" className="button small" onClick={() => useEditor.getState().setRun(null)}>Clear from canvas</button>
          </div>
        </section>
      )}
      {!runs.length ? (
        <div className="panel-empty"><p>No runs yet.</p><p className="muted small">Use Run to try the draft with test inputs.</p></div>
      ) : (
        <ul className="run-list">
          {runs.map((r) => (
            <li key={r.id}>
              <button type="button" className="run-item" onClick={() => open(r.id)}>
                <span>#{r.id}</span>
                <span className={`fnode-status st-${r.status}`}>{r.status}</span>
                <span className="muted small">{r.is_test ? "draft" : `v${r.version}`} · {r.created_at ? new Date(r.created_at).toLocaleTimeString() : ""}</span>
              </button>
              {canRun && r.status === "failed" && (
                <button type="button" className="button small" onClick={() => retry(r.id)} aria-label={`Re-run ${r.id} from failed`}>Re-run</button>
              )}
            </li>
          ))}
        </ul>
      )}
      {older && <button type="button" className="button small load-older" onClick={loadOlder}>Load older runs</button>}
    </div>
  );
}
