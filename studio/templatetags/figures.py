"""Template filters for figures and documents: JSON as stored, durations, rates and money as people read them."""

from __future__ import annotations

import json
import re

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


@register.filter
def percent(value) -> str:
    """A rate (0..1) as ``97.5 %``; an em dash when there is none."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f} %"


@register.filter
def usd(value, places: int = 4) -> str:
    """``$0.0123``; an em dash when there is none."""
    if value is None:
        return "—"
    return f"${float(value):,.{int(places)}f}"


@register.filter
def number(value, places: int = 0) -> str:
    """``12,345`` or ``12.3`` with ``places``; an em dash when there is none."""
    if value is None:
        return "—"
    return f"{float(value):,.{int(places)}f}"


@register.filter
def bucket(value) -> str:
    """A span of time (``timedelta``) in whole units: ``15 minutes``, ``1 hour``, ``7 days``."""
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


_HEX_DIGEST = re.compile(r"[0-9a-f]{32,}")


@register.filter
def brief(value) -> str:
    """A value in a line of details: lists joined, digests cut to 12 characters, long text cut."""
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(brief(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)[:120]
    text = str(value)
    if _HEX_DIGEST.fullmatch(text):
        return text[:12] + "…"
    return text if len(text) <= 120 else text[:119] + "…"
