"""Redaction: built-in patterns for personal data, applied to logs, traces and memory.

Tenants will be able to add their own rules; until then these are the rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern
    replacement: str
    valid: Callable[[str], bool] = lambda text: True  # a second look at a match


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


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def _phone_ok(text: str) -> bool:
    """9 to 15 digits (E.164 allows 15), and not an IPv4 address or a date."""
    digits = sum(c.isdigit() for c in text)
    return 9 <= digits <= 15 and not _IPV4.fullmatch(text) and not _DATE.fullmatch(text.strip())


BUILTIN_RULES: dict[str, Rule] = {
    "email": Rule("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    # Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes (checked with Luhn).
    "card": Rule("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[card]", _luhn_ok),
    "phone": Rule("phone", re.compile(r"(?<![\w+(])[+(]?\d[\d ().-]{7,}\d(?!\w)"), "[phone]", _phone_ok),
}


def find_pii(text: str, rules: list[str] | None = None) -> list[dict]:
    """Matches of the named rules (all built-in ones by default): ``[{"rule", "start", "end"}]``."""
    found = []
    for name in rules or list(BUILTIN_RULES):
        rule = BUILTIN_RULES[name]
        for match in rule.pattern.finditer(text):
            if rule.valid(match.group()):
                found.append({"rule": name, "start": match.start(), "end": match.end()})
    return found


def redact(text: str, rules: list[str] | None = None) -> str:
    """``text`` with every match replaced by its rule's placeholder (cards before phones)."""
    for name in rules or list(BUILTIN_RULES):
        rule = BUILTIN_RULES[name]
        text = rule.pattern.sub(lambda m, r=rule: r.replacement if r.valid(m.group()) else m.group(), text)
    return text
