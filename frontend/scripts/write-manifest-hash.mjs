// After `vite build`: write static/editor/manifest.json, which Django's {% editor_assets %} reads.
// It maps each entry to its hashed files and records `inputs_sha256`, a hash of the build inputs
// (tests/test_frontend_build.py recomputes it to catch a committed build that is stale).

import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { inputsSha256 } from "./inputs-hash.mjs";

const root = resolve(fileURLToPath(import.meta.url), "../..");
const outDir = resolve(root, "../static/editor");
const vite = JSON.parse(readFileSync(resolve(outDir, ".vite/manifest.json"), "utf8"));

const entries = {};
for (const [src, chunk] of Object.entries(vite)) {
  if (!chunk.isEntry) continue;
  const collectCss = (key, seen = new Set()) => {
    if (seen.has(key)) return [];
    seen.add(key);
    const c = vite[key];
    return [...(c.css || []), ...(c.imports || []).flatMap((k) => collectCss(k, seen))];
  };
  entries[chunk.name] = {
    src,
    file: chunk.file,
    css: [...new Set(collectCss(src))],
    imports: (chunk.imports || []).map((k) => vite[k].file),
  };
}
const manifest = { inputs_sha256: inputsSha256(root), node: process.version, entries };
writeFileSync(resolve(outDir, "manifest.json"), JSON.stringify(manifest, null, 2) + "\n");
console.log(`static/editor/manifest.json: inputs ${manifest.inputs_sha256.slice(0, 12)}…`);

