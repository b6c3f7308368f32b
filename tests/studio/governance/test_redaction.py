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
     ("ext 555-0100", "ext 555-0100")],  # too few digits to be a whole number
)  # fmt: skip
def test_redact(text, redacted):
    assert redact(text) == redacted


def test_find_pii_agrees_with_redact():
    text = "ana@example.com, 10.0.0.12, +1 415 555 0100"
    assert [m["rule"] for m in find_pii(text)] == ["email", "phone"]
