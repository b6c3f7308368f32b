"""The committed editor build (static/editor) matches its sources, and the frontend's own tests pass.

A Python-only install serves the committed build, so a change to ``frontend/`` without
``npm run build`` would ship a stale editor: the manifest records a hash of the build inputs,
recomputed here exactly as ``frontend/scripts/inputs-hash.mjs`` does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRONTEND = ROOT / "frontend"
MANIFEST = ROOT / "static" / "editor" / "manifest.json"

# Keep in step with frontend/scripts/inputs-hash.mjs.
INPUT_FILES = ["package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "bench.html"]
INPUT_DIRS = ["src", "scripts"]


def input_files() -> list[str]:
    files = [name for name in INPUT_FILES if (FRONTEND / name).is_file()]
    for folder in INPUT_DIRS:
        files += [p.relative_to(FRONTEND).as_posix() for p in (FRONTEND / folder).rglob("*") if p.is_file()]
    return sorted(files)


def inputs_sha256() -> str:
    total = hashlib.sha256()
    for rel in input_files():
        digest = hashlib.sha256((FRONTEND / rel).read_bytes()).hexdigest()
        total.update(f"{rel}\0{digest}\n".encode())
    return total.hexdigest()


def test_the_committed_editor_build_matches_its_sources():
    assert MANIFEST.is_file(), "static/editor/manifest.json is missing: run `cd frontend && npm run build`"
    manifest = json.loads(MANIFEST.read_text())
    assert manifest["inputs_sha256"] == inputs_sha256(), (
        "static/editor is stale: frontend/ changed since the last build; run `cd frontend && npm run build` "
        "and commit static/editor"
    )


def test_the_manifest_names_files_that_exist():
    manifest = json.loads(MANIFEST.read_text())
    for name in ("editor", "flowlist"):
        entry = manifest["entries"][name]
        for rel in [entry["file"], *entry["css"], *entry["imports"]]:
            assert (MANIFEST.parent / rel).is_file(), f"{name}: {rel} is missing from static/editor"


@pytest.mark.skipif(shutil.which("npm") is None, reason="Node/npm is not installed")
def test_the_frontend_unit_tests_pass():
    if not (FRONTEND / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True,
                       timeout=600)  # fmt: skip
    result = subprocess.run(
        ["npx", "vitest", "run"], cwd=FRONTEND, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
