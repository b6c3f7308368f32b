"""Filters for a run's trace page: JSON shown as it is stored, durations as people read them."""

from __future__ import annotations

import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    """Indented JSON (escaped by the template like any text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


@register.filter
def duration_ms(value) -> str:
    """``850 ms``, ``2.4 s``, ``3 min 5 s``, ``2 h 10 min``; an em dash when unknown."""
    if value is None or value == "":
        return "—"
    ms = float(value)
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
