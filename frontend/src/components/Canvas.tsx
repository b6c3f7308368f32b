import {
  Background,
  ControlButton,
  Controls,
  MiniMap,
  ReactFlow,
  useReactFlow,
  useStore as useFlowStore,
  ViewportPortal,
  type Connection,
  type Edge,
  type IsValidConnection,
  type OnConnectEnd,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import { connectionProblem, type FlowEdge, type FlowNode } from "../graph";
import { useEditor } from "../store";
import { LOD_ZOOM, nodeTypes } from "./nodes";
import { DND_TYPE } from "./Palette";

const MINIMAP_LIMIT = 800; // the minimap redraws every node on each change; skip it for big graphs
// Level of detail: zoomed out on a big graph, React Flow gets no edges (each edge is a component
// whose store selector runs on every change: thousands per drag frame); one SVG path draws them.
const SKETCH_MIN_NODES = 200;
const NO_EDGES: Edge[] = [];
const zoomedOutSelector = (s: { transform: [number, number, number] }) => s.transform[2] < LOD_ZOOM;
// Overview: further out on a very big graph, nodes are a few pixels wide. React Flow then gets
// only the selected nodes; the rest are rectangles in one SVG path that still select and drag.
const OVERVIEW_ZOOM = 0.2;
const OVERVIEW_MIN_NODES = 1000;
const overviewSelector = (s: { transform: [number, number, number] }) => s.transform[2] < OVERVIEW_ZOOM;
const proOptions = { hideAttribution: true };
const deleteKeys: string[] = []; // deletion goes through the store (undoable)
const minimapColor = (n: FlowNode) => (n.data.type === "note" ? "#fde68a" : "#c7d2fe");

/** The viewport that fits ``nodes`` into the canvas, from their positions alone: React Flow's
 * ``fitView`` waits until every node is measured, which a big graph in overview never is. */
function fittingViewport(nodes: FlowNode[]) {
  const box = document.querySelector(".canvas-wrap")?.getBoundingClientRect();
  const cw = box?.width || window.innerWidth - 540;
  const ch = box?.height || window.innerHeight - 100;
  const xs = nodes.map((n) => n.position.x);
  const ys = nodes.map((n) => n.position.y);
  const minX = Math.min(...xs);
  const minY = Math.min(...ys);
  const w = Math.max(...xs) + 200 - minX;
  const h = Math.max(...ys) + 90 - minY;
  const zoom = Math.min(1, Math.max(0.05, Math.min(cw / w, ch / h) * 0.87));
  return { x: (cw - w * zoom) / 2 - minX * zoom, y: (ch - h * zoom) / 2 - minY * zoom, zoom };
}

/** Fit to every node of the store (in overview React Flow holds only the selected ones). */
export function useFitAll() {
  const { fitBounds, fitView } = useReactFlow();
  return useCallback(() => {
    const nodes = useEditor.getState().nodes;
    if (!nodes.length) return;
    if (nodes.length < OVERVIEW_MIN_NODES) return void fitView({ padding: 0.2, maxZoom: 1, duration: 200 });
    const xs = nodes.map((n) => n.position.x);
    const ys = nodes.map((n) => n.position.y);
    const x = Math.min(...xs);
    const y = Math.min(...ys);
    const rect = { x, y, width: Math.max(...xs) + 200 - x, height: Math.max(...ys) + 90 - y };
    fitBounds(rect, { padding: 0.15, duration: 200 });
  }, [fitBounds, fitView]);
}

export function Canvas({ readOnly }: { readOnly: boolean }) {
  const nodes = useEditor((s) => s.nodes);
  const rawEdges = useEditor((s) => s.edges);
  const edgeProblems = useEditor((s) => s.problemIndex.edges);
  const steps = useEditor((s) => s.steps);
  const fitAll = useFitAll();
  // Computed once, on the first render: later changes of nodes must not move the view.
  const [initialViewport] = useState(() =>
    nodes.length >= OVERVIEW_MIN_NODES ? fittingViewport(nodes) : undefined,
  );
  const zoomedOut = useFlowStore(zoomedOutSelector);
  const sketch = zoomedOut && nodes.length >= SKETCH_MIN_NODES;
  const farOut = useFlowStore(overviewSelector);
  const overview = farOut && nodes.length >= OVERVIEW_MIN_NODES;
  const shownNodes = useMemo(() => (overview ? nodes.filter((n) => n.selected) : nodes), [overview, nodes]);
  const onNodesChange = useEditor((s) => s.onNodesChange);
  const onEdgesChange = useEditor((s) => s.onEdgesChange);
  const connect = useEditor((s) => s.connect);
  const checkpoint = useEditor((s) => s.checkpoint);
  const addNode = useEditor((s) => s.addNode);
  const focusNode = useEditor((s) => s.focusNode);
  const flow = useReactFlow();
  const { screenToFlowPosition, setCenter, getNode } = flow;
  useEffect(() => {
    // For scripts/benchmarks that set the zoom (studio/bench/editor.py); not an API.
    (window as unknown as { __afsFlow: unknown }).__afsFlow = flow;
  }, [flow]);

  const edges = useMemo(() => {
    const hasProblems = Object.keys(edgeProblems).length > 0;
    const hasSteps = Object.keys(steps).length > 0;
    if (!hasProblems && !hasSteps) return rawEdges;
    return rawEdges.map((e): Edge => {
      const problems = edgeProblems[e.id];
      const step = steps[e.source];
      const taken = step?.status === "succeeded" && (!step.handles || step.handles.includes(e.sourceHandle ?? "out"));
      if (!problems && !taken) return e;
      return {
        ...e,
        className: problems ? "edge-problem" : "edge-taken",
        label: problems ? problems[0] : undefined,
        animated: taken,
        ariaLabel: problems ? `Edge ${e.id}: ${problems.join("; ")}` : undefined,
      };
    });
  }, [rawEdges, edgeProblems, steps]);

  useEffect(() => {
    if (!focusNode) return;
    const n = getNode(focusNode.id);
    if (!n) return;
    const w = n.measured?.width ?? 200;
    const h = n.measured?.height ?? 80;
    // Keep the zoom unless the node would be too small to read.
    const zoom = flow.getZoom() < 0.6 ? 1 : flow.getZoom();
    setCenter(n.position.x + w / 2, n.position.y + h / 2, { zoom, duration: 300 });
    useEditor.getState().selectOnly(focusNode.id);
  }, [focusNode, getNode, setCenter, flow]);

  const isValidConnection: IsValidConnection = useCallback((c) => {
    const s = useEditor.getState();
    return connectionProblem(c as Connection, s.nodes, s.edges, s.types) === null;
  }, []);

  const onConnect = useCallback((c: Connection) => connect(c), [connect]);
  // React Flow drops an invalid connection silently; say why it was refused.
  const onConnectEnd: OnConnectEnd = useCallback((_event, state) => {
    if (state.isValid !== false || !state.fromHandle || !state.toHandle) return;
    const [from, to] = state.fromHandle.type === "source" ? [state.fromHandle, state.toHandle] : [state.toHandle, state.fromHandle];
    const s = useEditor.getState();
    const problem = connectionProblem(
      { source: from.nodeId, sourceHandle: from.id ?? null, target: to.nodeId, targetHandle: to.id ?? null },
      s.nodes, s.edges, s.types,
    );
    if (problem) s.setNotice(`Connection refused: ${problem}`);
  }, []);
  const onDragStart = useCallback(() => checkpoint(), [checkpoint]);
  const onDragOver = useCallback((e: DragEvent) => {
    if (e.dataTransfer.types.includes(DND_TYPE)) {
      e.preventDefault();
      e.dataTransfer.dropEffect = "move";
    }
  }, []);
  const onDrop = useCallback(
    (e: DragEvent) => {
      const type = e.dataTransfer.getData(DND_TYPE);
      if (!type || readOnly) return;
      e.preventDefault();
      const p = screenToFlowPosition({ x: e.clientX, y: e.clientY });
      addNode(type, { x: Math.round(p.x - 100), y: Math.round(p.y - 30) });
    },
    [addNode, screenToFlowPosition, readOnly],
  );

  return (
    <div className="canvas" onDragOver={onDragOver} onDrop={onDrop}>
      <ReactFlow
        nodes={shownNodes}
        edges={sketch ? NO_EDGES : edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onConnect={onConnect}
        onConnectEnd={onConnectEnd}
        onNodeDragStart={onDragStart}
        isValidConnection={isValidConnection}
        deleteKeyCode={deleteKeys}
        multiSelectionKeyCode={["Shift", "Meta", "Control"]}
        selectionKeyCode="Shift"
        nodesDraggable={!readOnly}
        nodesConnectable={!readOnly}
        onlyRenderVisibleElements={nodes.length > 300}
        minZoom={0.05}
        maxZoom={2}
        fitView={!initialViewport}
        defaultViewport={initialViewport}
        fitViewOptions={{ padding: 0.2, maxZoom: 1 }}
        proOptions={proOptions}
      >
        <Background gap={16} />
        {sketch && (
          <ViewportPortal>
            <GraphSketch withNodes={overview} readOnly={readOnly} />
          </ViewportPortal>
        )}
        {nodes.length <= MINIMAP_LIMIT && <MiniMap pannable zoomable nodeColor={minimapColor} ariaLabel="Minimap" />}
        <Controls aria-label="Zoom controls" showFitView={false}>
          <ControlButton onClick={fitAll} title="Fit view" aria-label="Fit view">
            ⤢
          </ControlButton>
        </Controls>
      </ReactFlow>
      {nodes.length === 0 && (
        <div className="canvas-empty">
          <p>This flow is empty.</p>
          <p className="muted small">Drag a <strong>Trigger</strong> from the palette to start.</p>
        </div>
      )}
    </div>
  );
}

function edgesPath(edges: FlowEdge[], at: Map<string, { x: number; y: number }>): string {
  const parts: string[] = [];
  for (const e of edges) {
    const a = at.get(e.source);
    const b = at.get(e.target);
    if (a && b) parts.push(`M${a.x + SKETCH_NODE_W} ${a.y + SKETCH_NODE_H / 2}L${b.x} ${b.y + SKETCH_NODE_H / 2}`);
  }
  return parts.join("");
}

/** The previous array while the new one holds the same items (by reference), so memos keyed
 * on it survive updates that changed other things. */
function useStable<T>(list: T[]): T[] {
  const ref = useRef(list);
  const prev = ref.current;
  if (prev !== list && (prev.length !== list.length || list.some((x, i) => x !== prev[i]))) ref.current = list;
  return ref.current;
}

const SKETCH_NODE_W = 190;
const SKETCH_NODE_H = 60;

/** All edges as one SVG path, in flow coordinates (simplified nodes are 190 × 60); in overview
 * also the unselected nodes, as rectangles that select on click and move on drag. */
function GraphSketch({ withNodes, readOnly }: { withNodes: boolean; readOnly: boolean }) {
  const nodes = useEditor((s) => s.nodes);
  const edges = useEditor((s) => s.edges);
  const { screenToFlowPosition, flowToScreenPosition } = useReactFlow();
  const drag = useRef<{ id: string; start: { x: number; y: number }; origin: { x: number; y: number }; moved: boolean } | null>(null);

  // A drag moves selected nodes only: the unselected nodes and the edges between them keep
  // their (big) paths untouched, so a mouse move rebuilds and repaints a few segments.
  const unselected = useStable(useMemo(() => nodes.filter((n) => !n.selected), [nodes]));
  const selected = useMemo(() => nodes.filter((n) => n.selected), [nodes]);
  const selectedKey = selected.map((n) => n.id).join(" ");
  const [staticEdges, movingEdges] = useMemo(() => {
    const ids = new Set(selectedKey ? selectedKey.split(" ") : []);
    const still: FlowEdge[] = [];
    const moving: FlowEdge[] = [];
    for (const e of edges) (ids.has(e.source) || ids.has(e.target) ? moving : still).push(e);
    return [still, moving];
  }, [edges, selectedKey]);
  const unselectedAt = useMemo(() => new Map(unselected.map((n) => [n.id, n.position])), [unselected]);
  const staticEdgePath = useMemo(() => edgesPath(staticEdges, unselectedAt), [staticEdges, unselectedAt]);
  const movingEdgePath = useMemo(() => {
    const at = new Map(unselectedAt);
    for (const n of selected) at.set(n.id, n.position);
    return edgesPath(movingEdges, at);
  }, [movingEdges, unselectedAt, selected]);
  const nodePath = useMemo(() => {
    if (!withNodes) return "";
    const parts: string[] = [];
    for (const n of unselected) parts.push(`M${n.position.x} ${n.position.y}h${SKETCH_NODE_W}v${SKETCH_NODE_H}h-${SKETCH_NODE_W}z`);
    return parts.join("");
  }, [withNodes, unselected]);

  const nodeAt = useCallback((p: { x: number; y: number }) => {
    const all = useEditor.getState().nodes;
    for (let i = all.length - 1; i >= 0; i--) {
      const { x, y } = all[i].position;
      if (p.x >= x && p.x <= x + SKETCH_NODE_W && p.y >= y && p.y <= y + SKETCH_NODE_H) return all[i];
    }
    return null;
  }, []);

  useEffect(() => {
    if (!withNodes) return;
    // For studio/bench/editor.py: a point on screen over a sketched node near the middle.
    (window as unknown as { __afsPickNode: unknown }).__afsPickNode = () => {
      const pane = document.querySelector(".react-flow")!.getBoundingClientRect();
      const mid = screenToFlowPosition({ x: pane.left + pane.width / 2, y: pane.top + pane.height / 2 });
      let best = null as null | { x: number; y: number };
      let bestD = Infinity;
      for (const n of useEditor.getState().nodes) {
        const d = (n.position.x - mid.x) ** 2 + (n.position.y - mid.y) ** 2;
        if (d < bestD) {
          bestD = d;
          best = flowToScreenPosition({ x: n.position.x + SKETCH_NODE_W / 2, y: n.position.y + SKETCH_NODE_H / 2 });
        }
      }
      return best;
    };
    return () => {
      delete (window as unknown as { __afsPickNode?: unknown }).__afsPickNode;
    };
  }, [withNodes, screenToFlowPosition, flowToScreenPosition]);

  const onPointerDown = (e: React.PointerEvent<SVGPathElement>) => {
    if (e.button !== 0) return;
    const p = screenToFlowPosition({ x: e.clientX, y: e.clientY });
    const hit = nodeAt(p);
    if (!hit) return;
    e.stopPropagation();
    const s = useEditor.getState();
    s.selectOnly(hit.id);
    if (readOnly) return;
    drag.current = { id: hit.id, start: p, origin: hit.position, moved: false };
    e.currentTarget.setPointerCapture(e.pointerId);
  };
  const onPointerMove = (e: React.PointerEvent<SVGPathElement>) => {
    const d = drag.current;
    if (!d) return;
    const p = screenToFlowPosition({ x: e.clientX, y: e.clientY });
    if (!d.moved) useEditor.getState().checkpoint();
    d.moved = true;
    useEditor.getState().moveNode(d.id, { x: Math.round(d.origin.x + p.x - d.start.x), y: Math.round(d.origin.y + p.y - d.start.y) });
  };
  const onPointerUp = (e: React.PointerEvent<SVGPathElement>) => {
    const d = drag.current;
    drag.current = null;
    if (e.currentTarget.hasPointerCapture(e.pointerId)) e.currentTarget.releasePointerCapture(e.pointerId);
    if (d?.moved) useEditor.getState().moveNode(d.id, null);
  };

  return (
    <svg className="graph-sketch" aria-hidden="true"
      style={{ position: "absolute", left: 0, top: 0, overflow: "visible", width: 1, height: 1, pointerEvents: "none" }}>
      <path d={staticEdgePath} fill="none" stroke="#94a3b8" strokeWidth={3} />
      <path d={movingEdgePath} fill="none" stroke="#94a3b8" strokeWidth={3} />
      {withNodes && (
        <path d={nodePath} className="nopan nodrag sketch-nodes" fill="#c7d2fe" stroke="#6366f1" strokeWidth={4}
          style={{ pointerEvents: "visiblePainted", cursor: readOnly ? "pointer" : "grab" }}
          onPointerDown={onPointerDown} onPointerMove={onPointerMove} onPointerUp={onPointerUp} />
      )}
    </svg>
  );
}
