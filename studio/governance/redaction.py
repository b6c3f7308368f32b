"""Redaction: patterns for personal data, replaced by a placeholder before text is kept.

Built-in rules (email, card, phone) and each tenant's own (Settings → Redaction, kept in
``Tenant.settings["redaction"]["rules"]``). Memory namespaces choose which apply to what they
store; the audit log applies the built-in ones to its details.

A tenant's pattern runs on the ``regex`` engine with a time limit per text, so a pattern that
backtracks catastrophically (``(a|aa)+$``) cannot hold a worker: past the limit the whole text
is replaced (redaction fails closed, never open).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import regex
from django.core.exceptions import ValidationError

log = logging.getLogger(__name__)

CUSTOM_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
MAX_CUSTOM_RULES = 30
MAX_PATTERN_CHARS = 500
PATTERN_TIMEOUT_S = 0.05  # per rule and text: real patterns take microseconds


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: Any  # re.Pattern (built-in) or regex.Pattern (a tenant's)
    replacement: str
    valid: Callable[[str], bool] = lambda text: True  # a second look at a match
    custom: bool = False

    def finditer(self, text: str):
        if not self.custom:
            return self.pattern.finditer(text)
        return self.pattern.finditer(text, timeout=PATTERN_TIMEOUT_S)

    def sub(self, text: str) -> str:
        def replace(match) -> str:
            return self.replacement if self.valid(match.group()) else match.group()

        if not self.custom:
            return self.pattern.sub(replace, text)
        try:
            return self.pattern.sub(replace, text, timeout=PATTERN_TIMEOUT_S)
        except TimeoutError:
            log.warning("redaction rule %r timed out on a text of %d characters: all of it redacted",
                        self.name, len(text))  # fmt: skip
            return f"[{self.name}: redacted]"


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


# A date with its time ("2026-11-25 10:46", "25.11.2026 10:46") runs on into the hour, past a
# whole-match date check: these shapes never occur inside a phone number.
_DATE_INSIDE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}\.\d{1,2}\.\d{4}")


def _phone_ok(text: str) -> bool:
    """9 to 15 digits (E.164 allows 15), and not an IPv4 address, a date or a timestamp."""
    digits = sum(c.isdigit() for c in text)
    return (
        9 <= digits <= 15
        and not _IPV4.fullmatch(text)
        and not _DATE.fullmatch(text.strip())
        and not _DATE_INSIDE.search(text)
    )


BUILTIN_RULES: dict[str, Rule] = {
    "email": Rule("email", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    # Card numbers: 13 to 19 digits, optionally grouped by spaces or dashes (checked with Luhn).
    "card": Rule("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b"), "[card]", _luhn_ok),
    "phone": Rule("phone", re.compile(r"(?<![\w+(])[+(]?\d[\d ().-]{7,}\d(?!\w)"), "[phone]", _phone_ok),
}


def find_pii(
    text: str, rules: list[str] | None = None, available: dict[str, Rule] = BUILTIN_RULES
) -> list[dict]:
    """Matches of the named rules (all built-in ones by default): ``[{"rule", "start", "end"}]``."""
    found = []
    for name in rules or list(BUILTIN_RULES):
        rule = available[name]
        for match in rule.finditer(text):
            if rule.valid(match.group()):
                found.append({"rule": name, "start": match.start(), "end": match.end()})
    return found


def redact(text: str, rules: list[str] | None = None, available: dict[str, Rule] = BUILTIN_RULES) -> str:
    """``text`` with every match replaced by its rule's placeholder, rule by rule in the order
    given (all built-in ones by default: cards before phones); ``available`` maps the names to
    rules (``tenant_rules`` adds a tenant's own)."""
    for name in rules or list(BUILTIN_RULES):
        text = available[name].sub(text)
    return text


def redact_json(value, rules: list[str] | None = None, available: dict[str, Rule] = BUILTIN_RULES):
    """A JSON value with ``redact`` applied to every string in it (keys as strings)."""
    if isinstance(value, str):
        return redact(value, rules, available)
    if isinstance(value, dict):
        return {str(key): redact_json(item, rules, available) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(item, rules, available) for item in value]
    return value


# -- a tenant's own rules -------------------------------------------------------------------------


@lru_cache(maxsize=512)
def _compiled(pattern: str):
    return regex.compile(pattern, regex.V0)


def custom_rule(spec: dict) -> Rule:
    return Rule(spec["name"], _compiled(spec["pattern"]), spec["replacement"], custom=True)


def _own(settings: dict | None) -> list[dict]:
    """The tenant's own rules as stored (``{"name", "pattern", "replacement"}``)."""
    return ((settings or {}).get("redaction") or {}).get("rules") or []


def tenant_rules(settings: dict | None) -> dict[str, Rule]:
    """The built-in rules and the tenant's own, by name."""
    return {**BUILTIN_RULES, **{spec["name"]: custom_rule(spec) for spec in _own(settings)}}


def parse_custom_rule(*, name: str, pattern: str, replacement: str = "", existing: dict[str, Rule]) -> dict:
    """A tenant rule from a form, or a ValidationError naming the field. The pattern must
    compile, must not match the empty string (it would insert its placeholder everywhere), and
    is tried on a sample under the time limit."""
    name, replacement = name.strip(), replacement.strip() or f"[{name.strip()}]"
    if not CUSTOM_NAME_RE.match(name):
        raise ValidationError(
            {"name": "lower-case letters, digits, '_' or '-', starting with a letter (at most 40)"}
        )
    if name in existing:
        raise ValidationError({"name": f"a rule named {name!r} exists already"})
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise ValidationError({"pattern": f"1 to {MAX_PATTERN_CHARS} characters"})
    try:
        compiled = _compiled(pattern)
    except regex.error as exc:
        raise ValidationError({"pattern": f"not a valid regular expression: {exc}"}) from None
    try:
        if compiled.fullmatch("", timeout=PATTERN_TIMEOUT_S) is not None:
            raise ValidationError({"pattern": "matches the empty string: it would match everywhere"})
        compiled.search("a" * 60 + "!", timeout=PATTERN_TIMEOUT_S)  # the shape of catastrophic backtracking
    except TimeoutError:
        raise ValidationError({"pattern": "too slow: it backtracks without bound on a short text"}) from None
    if len(replacement) > 60:
        raise ValidationError({"replacement": "at most 60 characters"})
    if sum(1 for rule in existing.values() if rule.custom) >= MAX_CUSTOM_RULES:
        raise ValidationError({"name": f"at most {MAX_CUSTOM_RULES} rules of your own"})
    return {"name": name, "pattern": pattern, "replacement": replacement}


# -- run traces -------------------------------------------------------------------------------------


def trace_rule_names(settings: dict | None) -> list[str]:
    """The rules a tenant applies to what run traces record (a step's recorded inputs and error
    messages): the built-in ones unless it chose otherwise."""
    chosen = ((settings or {}).get("redaction") or {}).get("traces")
    return list(BUILTIN_RULES) if chosen is None else list(chosen)


def trace_redactor(settings: dict | None):
    """A function that redacts a JSON value with the tenant's trace rules (identity when none)."""
    available = tenant_rules(settings)
    names = [name for name in trace_rule_names(settings) if name in available]
    if not names:
        return shown_whole
    return lambda value: redact_json(value, names, available)


def shown_whole(value):
    return value


def trace_view_redactor(*, tenant, person: bool):
    """What a run shows of its data (its inputs and outputs, its steps' inputs and outputs):
    to a person (a member's session: the trace page, the editor's run panel, the run socket)
    through the tenant's trace rules; to a system (an API key or a webhook's caller, which
    start runs and use their outputs), whole. Nothing stored changes: later steps, retries and
    replays use the data."""
    return trace_redactor(tenant.settings) if person else shown_whole


def trace_rules_set(*, tenant, names: list[str], actor: str) -> list[str]:
    """Choose the rules run traces apply (unknown names are a ValidationError naming them)."""
    from studio.tenants.services import tenant_settings_set

    available = tenant_rules(tenant.settings)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValidationError({"traces": f"unknown rule(s): {', '.join(unknown)}"})
    chosen = [name for name in available if name in names]  # in the rules' order
    tenant_settings_set(tenant=tenant, path=("redaction", "traces"), value=chosen, actor=actor)
    return chosen


def redaction_rule_add(*, tenant, fields: dict, actor: str) -> dict:
    """Add a tenant rule (checked by ``parse_custom_rule``); the settings change is audited."""
    from studio.tenants.services import tenant_settings_update

    def add(settings: dict) -> list[dict]:
        return [*_own(settings), parse_custom_rule(existing=tenant_rules(settings), **fields)]

    return tenant_settings_update(tenant=tenant, path=("redaction", "rules"), change=add, actor=actor)[-1]


def redaction_rule_remove(*, tenant, name: str, actor: str) -> bool:
    """Remove a tenant rule; False when there is none (built-in ones cannot be removed). A rule
    a memory namespace still applies is refused (ValidationError): removing it there silently
    would stop a redaction someone relies on."""
    from studio.memory.services import namespaces_applying  # memory applies the rules it chooses
    from studio.tenants.services import tenant_settings_update

    def remove(settings: dict) -> list[dict]:
        own = _own(settings)
        if not any(rule["name"] == name for rule in own):
            raise LookupError(name)
        users = namespaces_applying(tenant=tenant, rule=name)
        if name in trace_rule_names(settings):
            users = ["run traces", *users]
        if users:
            raise ValidationError({"name": f"{name} is applied by {', '.join(users)}: untick it there first"})
        return [rule for rule in own if rule["name"] != name]

    try:
        tenant_settings_update(tenant=tenant, path=("redaction", "rules"), change=remove, actor=actor)
    except LookupError:
        return False
    return True
