"""Node types. ``base`` holds the registry; each other module is one type."""

from __future__ import annotations

from flows.nodes.base import (
    CHILD_RUN_TYPES,
    QUEUE_DEFAULT,
    QUEUE_IO,
    NodeContext,
    NodeError,
    NodeResult,
    NodeType,
    all_types,
    get_type,
    register,
)

BUILTIN_MODULES = (
    "trigger", "llm", "agent", "router", "condition", "http", "transform", "guardrail", "map", "subflow",
    "output", "note", "memory_search", "memory_write",
)  # fmt: skip


def register_builtin_types() -> None:
    from importlib import import_module

    for name in BUILTIN_MODULES:
        register(import_module(f"flows.nodes.{name}").NODE)


__all__ = [
    "CHILD_RUN_TYPES", "QUEUE_DEFAULT", "QUEUE_IO", "NodeContext", "NodeError", "NodeResult", "NodeType",
    "all_types", "get_type", "register", "register_builtin_types",
]  # fmt: skip
