"""What map and sub-flow share: the pinned flow reference."""

from __future__ import annotations

FLOW_REF_SCHEMA = {
    "type": "object",
    "title": "Flow (pinned version)",
    "properties": {"id": {"type": "integer", "minimum": 1}, "version": {"type": "integer", "minimum": 1}},
    "required": ["id", "version"],
    "additionalProperties": False,
}
