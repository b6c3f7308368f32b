// The baseline for scripts/bench_editor.py: a raw React Flow page (default nodes, no store,
// no level of detail) loading the same generated graph as the editor.
import { ReactFlow, useEdgesState, useNodesState, type Edge, type Node } from "@xyflow/react";
import { createRoot } from "react-dom/client";
import "@xyflow/react/dist/style.css";
import { benchGraph } from "./graph";

function RawFlow({ nodes: n0, edges: e0 }: { nodes: Node[]; edges: Edge[] }) {
  const [nodes, , onNodesChange] = useNodesState(n0);
  const [edges, , onEdgesChange] = useEdgesState(e0);
  return (
    <div style={{ width: "100vw", height: "100vh" }}>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        onNodesChange={onNodesChange}
        onEdgesChange={onEdgesChange}
        onInit={(flow) => ((window as any).__afsFlow = flow)}
        fitView
        minZoom={0.05}
      />
    </div>
  );
}

const root = document.getElementById("raw-root");
if (root) {
  // The same generated graph the editor loads (studio/bench/editor.py writes it as JSON).
  const count = Number(new URLSearchParams(location.search).get("nodes") || 1000);
  const doc = benchGraph(count);
  const nodes: Node[] = doc.nodes.map((n) => ({ id: n.id, position: n.position, data: { label: n.id } }));
  const edges: Edge[] = doc.edges.map((e) => ({ id: e.id, source: e.source, target: e.target }));
  createRoot(root).render(<RawFlow nodes={nodes} edges={edges} />);
}
