// The palette, from GET node-types/: categories, search, help text. Drag an item to the
// canvas, or click it (Enter) to add it in the middle of the view.
import { memo, useMemo, useState } from "react";
import { useEditor } from "../store";
import type { NodeTypeInfo } from "../types";

export const DND_TYPE = "application/x-agent-flow-node-type";

export const Palette = memo(function Palette({ onAdd, disabled }: { onAdd: (type: string) => void; disabled: boolean }) {
  const types = useEditor((s) => s.types);
  const [query, setQuery] = useState("");
  const groups = useMemo(() => {
    const q = query.trim().toLowerCase();
    const out = new Map<string, NodeTypeInfo[]>();
    for (const t of Object.values(types)) {
      if (q && !`${t.title} ${t.type} ${t.category} ${t.help}`.toLowerCase().includes(q)) continue;
      if (!out.has(t.category)) out.set(t.category, []);
      out.get(t.category)!.push(t);
    }
    const order = ["Triggers", "AI", "Logic", "Tools", "Data", "Memory", "Human", "Output", "Notes"];
    return [...out.entries()].sort(
      ([a], [b]) => (order.indexOf(a) + 1 || 50) - (order.indexOf(b) + 1 || 50) || a.localeCompare(b),
    );
  }, [types, query]);

  return (
    <aside className="palette" aria-label="Node palette">
      <label htmlFor="palette-search" className="visually-hidden">Search node types</label>
      <input id="palette-search" type="search" placeholder="Search nodes…" value={query}
        onChange={(e) => setQuery(e.target.value)} />
      {groups.length === 0 && <p className="muted small">No node type matches “{query}”.</p>}
      {groups.map(([category, items]) => (
        <section key={category} className="palette-group">
          <h3>{category}</h3>
          <ul>
            {items.map((t) => (
              <li key={t.type}>
                <button
                  type="button"
                  className="palette-item"
                  data-node-type={t.type}
                  draggable={!disabled}
                  disabled={disabled}
                  title={t.help}
                  aria-label={`Add ${t.title}: ${t.help}`}
                  onDragStart={(e) => {
                    e.dataTransfer.setData(DND_TYPE, t.type);
                    e.dataTransfer.setData("text/plain", t.type);
                    e.dataTransfer.effectAllowed = "move";
                  }}
                  onClick={() => onAdd(t.type)}
                >
                  <span className="palette-icon" style={{ background: t.color }} aria-hidden="true">{t.icon}</span>
                  <span className="palette-text">
                    <span className="palette-title">{t.title}</span>
                    <span className="palette-help">{t.help}</span>
                  </span>
                </button>
              </li>
            ))}
          </ul>
        </section>
      ))}
    </aside>
  );
});
