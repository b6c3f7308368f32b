"""Starter graphs ("start from a template"): JSON files in ``flows/starters/``.

A starter lists the node types it ``requires``; one whose types are not all registered (the
approval node comes from the inbox app) is left out rather than offered broken.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from flows.nodes import get_type

STARTERS_DIR = Path(__file__).resolve().parent / "starters"


@dataclass(frozen=True)
class Starter:
    slug: str
    name: str
    description: str
    requires: tuple[str, ...]
    graph: dict

    @property
    def available(self) -> bool:
        return all(get_type(t) is not None for t in self.requires)

    def fresh_graph(self) -> dict:
        return copy.deepcopy(self.graph)


@cache
def _load_all() -> tuple[Starter, ...]:
    starters = []
    for path in sorted(STARTERS_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        types = sorted({n["type"] for n in doc["graph"]["nodes"]})
        starters.append(
            Starter(
                slug=doc["slug"],
                name=doc["name"],
                description=doc.get("description", ""),
                requires=tuple(doc.get("requires") or types),
                graph=doc["graph"],
            )
        )
    order = {"summarize": 0, "classify": 1, "approve": 2}
    return tuple(sorted(starters, key=lambda s: (order.get(s.slug, 99), s.name)))


def starter_list() -> list[Starter]:
    """The starters whose node types are all registered, in a stable order."""
    return [s for s in _load_all() if s.available]


def starter_get(slug: str) -> Starter | None:
    return next((s for s in starter_list() if s.slug == slug), None)
