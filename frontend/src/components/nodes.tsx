// Canvas cards. Memoized; each reads only its own slice of the store. Zoomed out, a card
// renders as a plain block (level of detail) so thousands of nodes stay interactive.
import { Handle, Position, useStore as useFlowStore, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { inputHandles, outputHandles, type FlowNode } from "../graph";
import { useEditor } from "../store";

export const LOD_ZOOM = 0.45;
const zoomedOutSelector = (s: { transform: [number, number, number] }) => s.transform[2] < LOD_ZOOM;

const STATUS_LABEL: Record<string, string> = {
  pending: "pending",
  queued: "queued",
  running: "running",
  waiting: "waiting for review",
  succeeded: "succeeded",
  failed: "failed",
  skipped: "skipped",
  cancelled: "cancelled",
};

function preview(config: Record<string, unknown>): string {
  const text = (config.label ?? config.prompt ?? config.template ?? config.expression ?? config.url ?? "") as unknown;
  return typeof text === "string" ? text.split("\n")[0].slice(0, 60) : "";
}

function handleTop(i: number, n: number) {
  return { top: `${((i + 1) / (n + 1)) * 100}%` };
}

export const FlowNodeCard = memo(function FlowNodeCard({ id, data, selected }: NodeProps<FlowNode>) {
  const info = useEditor((s) => s.types[data.type]);
  const problems = useEditor((s) => s.problemIndex.nodes[id]);
  const status = useEditor((s) => s.steps[id]?.status);
  const zoomedOut = useFlowStore(zoomedOutSelector);
  const inputs = inputHandles(info);
  const outputs = outputHandles(info, data.config);
  const title = info?.title ?? data.type;
  const color = info?.color ?? "#64748b";
  const cls = `fnode${selected ? " selected" : ""}${problems ? " has-problem" : ""}${status ? ` status-${status}` : ""}`;
  const label = `${title} node ${id}${status ? `, ${STATUS_LABEL[status] ?? status}` : ""}${problems ? `, ${problems.length} problem(s)` : ""}`;

  if (zoomedOut) {
    return (
      <div className={`${cls} lod`} style={{ borderLeftColor: color }} aria-label={label} data-node-id={id}>
        {inputs.map((h, i) => (
          <Handle key={h} type="target" position={Position.Left} id={h} style={handleTop(i, inputs.length)} />
        ))}
        {outputs.map((h, i) => (
          <Handle key={h} type="source" position={Position.Right} id={h} style={handleTop(i, outputs.length)} />
        ))}
      </div>
    );
  }
  const sub = preview(data.config);
  return (
    <div className={cls} style={{ borderTopColor: color }} aria-label={label} data-node-id={id} data-node-type={data.type}>
      <div className="fnode-head">
        <span className="fnode-icon" style={{ background: color }} aria-hidden="true">
          {info?.icon ?? "●"}
        </span>
        <span className="fnode-title">{title}</span>
        {status && (
          <span className={`fnode-status st-${status}`} data-status={status}>
            {STATUS_LABEL[status] ?? status}
          </span>
        )}
      </div>
      <div className="fnode-id">{id}</div>
      {sub && <div className="fnode-sub">{sub}</div>}
      {problems && (
        <ul className="fnode-problems" role="alert">
          {problems.slice(0, 3).map((m, i) => (
            <li key={i}>{m}</li>
          ))}
        </ul>
      )}
      {inputs.map((h, i) => (
        <Handle
          key={h}
          type="target"
          position={Position.Left}
          id={h}
          style={handleTop(i, inputs.length)}
          aria-label={`${id} input ${h}`}
          title={`input: ${h}`}
        />
      ))}
      {outputs.map((h, i) => (
        <Handle
          key={h}
          type="source"
          position={Position.Right}
          id={h}
          className={h === "error" ? "handle-error" : undefined}
          style={handleTop(i, outputs.length)}
          aria-label={`${id} output ${h}`}
          title={`output: ${h}`}
        >
          {outputs.length > 1 && <span className="handle-label">{h}</span>}
        </Handle>
      ))}
    </div>
  );
});

export const NoteCard = memo(function NoteCard({ id, data, selected }: NodeProps<FlowNode>) {
  const text = typeof data.config.text === "string" ? data.config.text : "";
  return (
    <div className={`note-card${selected ? " selected" : ""}`} aria-label={`Note ${id}`} data-node-id={id} data-node-type="note">
      {text || <span className="muted">Empty note — select it to write.</span>}
    </div>
  );
});

// Module scope, so React Flow never sees a new object (STYLE.md).
export const nodeTypes = { flow: FlowNodeCard, note: NoteCard };
