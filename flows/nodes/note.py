from __future__ import annotations

from flows.nodes.base import NodeType

NODE = NodeType(
    type="note",
    title="Note",
    category="Notes",
    help="A sticky note on the canvas. Never executed.",
    config_schema={
        "properties": {"text": {"type": "string", "x-multiline": True, "maxLength": 20000}},
        "additionalProperties": False,
    },
    inputs=(),
    outputs=(),
    can_fail=False,
    common=False,
    executes=False,
    icon="✎",
    color="#ca8a04",
)
