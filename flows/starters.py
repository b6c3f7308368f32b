"""Starter graphs ("start from a template"): JSON files in ``flows/starters/``.

A starter lists the node types it ``requires``; one whose types are not all registered (the
approval node comes from the inbox app) is left out rather than offered broken.

A starter may come with ``companions``: flows its map and sub-flow nodes run, written in its
graph as ``"flow": {"companion": "<key>"}``. Installing it (``services.starter_install``) creates
and publishes them first, then points the starter's nodes at their first version.
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
class Companion:
    key: str
    name: str
    description: str
    graph: dict


@dataclass(frozen=True)
class Starter:
    slug: str
    name: str
    description: str
    requires: tuple[str, ...]
    graph: dict
    companions: tuple[Companion, ...] = ()

    @property
    def available(self) -> bool:
        return all(get_type(t) is not None for t in self.requires)


def filled_graph(graph: dict, companion_ids: dict[str, int], *, offline: bool = False) -> dict:
    """A copy of a starter's (or a companion's) graph to create a flow from: companions referenced
    by their flows' ids (first versions), and, ``offline``, model nodes answering with the
    scripted provider (their scripts ship with the starter)."""
    graph = copy.deepcopy(graph)
    for node in graph["nodes"]:
        config = node.get("config") or {}
        ref = config.get("flow")
        if isinstance(ref, dict) and "companion" in ref:
            config["flow"] = {"id": companion_ids[ref["companion"]], "version": 1}
        if offline and config.get("provider") == "anthropic":
            config["provider"] = "scripted"
    return graph


def companion_flow_name(flow_name: str, companion: Companion) -> str:
    """The name a companion's flow is installed under, next to the starter's flow."""
    return f"{flow_name} · {companion.name}"


@cache
def _load_all() -> tuple[Starter, ...]:
    starters = []
    for path in sorted(STARTERS_DIR.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        companions = tuple(
            Companion(key=c["key"], name=c["name"], description=c.get("description", ""), graph=c["graph"])
            for c in doc.get("companions", [])
        )
        graphs = [doc["graph"], *(c.graph for c in companions)]
        types = sorted({n["type"] for g in graphs for n in g["nodes"]})
        starters.append(
            Starter(
                slug=doc["slug"],
                name=doc["name"],
                description=doc.get("description", ""),
                requires=tuple(doc.get("requires") or types),
                graph=doc["graph"],
                companions=companions,
            )
        )
    order = {"summarize": 0, "classify": 1, "approve": 2, "support_triage": 3, "pricing": 4}
    return tuple(sorted(starters, key=lambda s: (order.get(s.slug, 99), s.name)))


def starter_list() -> list[Starter]:
    """The starters whose node types are all registered, in a stable order."""
    return [s for s in _load_all() if s.available]


def starter_get(slug: str) -> Starter | None:
    return next((s for s in starter_list() if s.slug == slug), None)
