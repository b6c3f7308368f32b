"""Redaction: built-in patterns for personal data, applied to logs, traces and memory.

Tenants will be able to add their own rules; until then these are the rules."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern
    replacement: str


BUILTIN_RULES: dict[str, Rule] = {
    "email": Rule("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    # Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes (checked with Luhn).
    "card": Rule("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[card]"),
    "phone": Rule("phone", re.compile(r"(?<![\w+])\+?\d[\d ().-]{7,}\d(?!\w)"), "[phone]"),
}


def _luhn_ok(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    checksum = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        checksum += digit
    return checksum % 10 == 0


def find_pii(text: str, rules: list[str] | None = None) -> list[dict]:
    """Matches of the named rules (all built-in ones by default): ``[{"rule", "start", "end"}]``."""
    found = []
    for name in rules or list(BUILTIN_RULES):
        rule = BUILTIN_RULES[name]
        for match in rule.pattern.finditer(text):
            if name == "card" and not _luhn_ok(match.group()):
                continue
            found.append({"rule": name, "start": match.start(), "end": match.end()})
    return found


def redact(text: str, rules: list[str] | None = None) -> str:
    """``text`` with every match replaced by its rule's placeholder (cards before phones)."""
    for name in rules or list(BUILTIN_RULES):
        rule = BUILTIN_RULES[name]
        if name == "card":
            text = rule.pattern.sub(
                lambda m, r=rule: r.replacement if _luhn_ok(m.group()) else m.group(), text
            )
        else:
            text = rule.pattern.sub(rule.replacement, text)
    return text
