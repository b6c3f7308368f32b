// The benchmark's generated graph: ``count`` nodes on a grid, about 1.2 edges per node, acyclic
// (edges go from lower to higher index). studio/bench/editor.py builds the same one in Python.
export interface BenchNode { id: string; position: { x: number; y: number } }
export interface BenchEdge { id: string; source: string; target: string }

export function benchGraph(count: number): { nodes: BenchNode[]; edges: BenchEdge[] } {
  const cols = Math.ceil(Math.sqrt(count));
  const nodes = Array.from({ length: count }, (_, i) => ({
    id: `n${i}`,
    position: { x: (i % cols) * 260, y: Math.floor(i / cols) * 120 },
  }));
  const edges: BenchEdge[] = [];
  for (let i = 1; i < count; i++) edges.push({ id: `e${i}`, source: `n${i - 1}`, target: `n${i}` });
  for (let i = 0; edges.length < Math.round(count * 1.2) && i + cols < count; i += 5)
    edges.push({ id: `x${i}`, source: `n${i}`, target: `n${i + cols}` });
  return { nodes, edges };
}
