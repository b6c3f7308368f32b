// The build inputs' hash. Keep in step with tests/test_frontend_build.py (same files, same
// algorithm): sorted POSIX paths; for each, "<path>\0<sha256 of bytes>\n" into one SHA-256.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";

export const INPUT_FILES = ["package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "bench.html"];
export const INPUT_DIRS = ["src", "scripts"];

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

export function inputFiles(root) {
  const files = INPUT_FILES.map((f) => join(root, f)).filter((p) => existsSync(p));
  for (const d of INPUT_DIRS) if (existsSync(join(root, d))) files.push(...walk(join(root, d)));
  return files.map((p) => relative(root, p).split(sep).join("/")).sort();
}

export function inputsSha256(root) {
  const total = createHash("sha256");
  for (const rel of inputFiles(root)) {
    const digest = createHash("sha256").update(readFileSync(join(root, rel))).digest("hex");
    total.update(`${rel}\0${digest}\n`);
  }
  return total.digest("hex");
}
