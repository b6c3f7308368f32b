"""The built-in redaction rules: what they take out, and look-alikes they leave alone."""

from __future__ import annotations

import pytest

from studio.governance.redaction import find_pii, redact


@pytest.mark.parametrize(
    ("text", "redacted"),
    [("write to ana@example.com", "write to [email]"),
     ("call +44 20 7946 0958 today", "call [phone] today"),
     ("call (415) 555-0100", "call [phone]"),
     ("card 4111 1111 1111 1111", "card [card]"),
     # Look-alikes: not personal data, left as they are.
     ("card 4111 1111 1111 1112", "card 4111 1111 1111 1112"),  # fails Luhn
     ("host 127.0.0.1 and 192.168.100.200", "host 127.0.0.1 and 192.168.100.200"),
     ("due 2026-11-25, paid 25.11.2026", "due 2026-11-25, paid 25.11.2026"),
     ("ext 555-0100", "ext 555-0100"),  # too few digits to be a whole number
     ("at 2026-11-25 10:46:40,122 INFO", "at 2026-11-25 10:46:40,122 INFO"),  # a log line's timestamp
     ("on 25.11.2026 10:46", "on 25.11.2026 10:46"),
     ("call 8 (495) 123-45-67", "call [phone]")],
)  # fmt: skip
def test_redact(text, redacted):
    assert redact(text) == redacted


def test_find_pii_agrees_with_redact():
    text = "ana@example.com, 10.0.0.12, +1 415 555 0100"
    assert [m["rule"] for m in find_pii(text)] == ["email", "phone"]


def test_a_tenant_rule_is_checked_before_it_is_kept():
    from django.core.exceptions import ValidationError

    from studio.governance.redaction import parse_custom_rule, tenant_rules

    existing = tenant_rules({})
    made = parse_custom_rule(name="order-id", pattern=r"\bORD-\d{6}\b", replacement="", existing=existing)
    assert made == {"name": "order-id", "pattern": r"\bORD-\d{6}\b", "replacement": "[order-id]"}
    for fields, field in (
        ({"name": "Order", "pattern": "x"}, "name"),
        ({"name": "email", "pattern": "x"}, "name"),  # a built-in name
        ({"name": "ok", "pattern": "(unclosed"}, "pattern"),
        ({"name": "ok", "pattern": "a*"}, "pattern"),  # matches the empty string
        ({"name": "ok", "pattern": "(a|aa)+$"}, "pattern"),  # catastrophic backtracking
        ({"name": "ok", "pattern": "x", "replacement": "y" * 61}, "replacement"),
    ):
        with pytest.raises(ValidationError) as caught:
            parse_custom_rule(existing=existing, **fields)
        assert field in caught.value.message_dict, (fields, caught.value.message_dict)


def test_tenant_rules_redact_next_to_the_built_in_ones_and_fail_closed_when_too_slow():
    from studio.governance.redaction import redact, tenant_rules

    settings = {"redaction": {"rules": [
        {"name": "order-id", "pattern": r"\bORD-\d{6}\b", "replacement": "[order]"},
        {"name": "slow", "pattern": "(a|aa)+$", "replacement": "[slow]"},  # stored by hand: parse refuses it
    ]}}  # fmt: skip
    rules = tenant_rules(settings)
    assert list(rules) == ["email", "card", "phone", "order-id", "slow"]
    text = "ORD-123456 for ada@example.com"
    assert redact(text, ["email", "order-id"], rules) == "[order] for [email]"
    assert redact("a" * 40 + "!", ["slow"], rules) == "[slow: redacted]"  # the whole text, not a hang
