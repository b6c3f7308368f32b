"""Log lines are redacted, as plain text or as JSON lines, in the web and in the workers."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

from django.conf import settings

from studio.logs import JsonFormatter, RedactingFormatter


def captured(formatter: logging.Formatter):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tests.logs.{id(formatter)}")
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_plain_lines_are_redacted_exceptions_included():
    logger, stream = captured(RedactingFormatter("%(asctime)s %(levelname)s %(message)s"))
    try:
        raise ValueError("card 4111 1111 1111 1111 declined")
    except ValueError:
        logger.exception("refund for %s failed", "ada@example.com")
    text = stream.getvalue()
    stamp, rest = text[:23], text[24:]
    assert stamp[:4].isdigit() and stamp[4] == "-"  # the time is not taken for a phone number
    assert rest.startswith("ERROR refund for [email] failed")
    assert "ValueError: card [card] declined" in text
    assert "ada@example.com" not in text and "4111" not in text


def test_json_lines_carry_extras_and_are_redacted():
    logger, stream = captured(JsonFormatter())
    logger.warning("call +44 20 7946 0958 back", extra={"run_id": 7, "customer": "bob@example.com"})
    try:
        raise RuntimeError("ada@example.com")
    except RuntimeError:
        logger.error("boom", exc_info=True)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["message"] == "call [phone] back"
    assert first["run_id"] == 7 and first["customer"] == "[email]"
    assert first["time"].endswith("+00:00") and first["logger"].startswith("tests.logs")
    assert second["message"] == "boom" and second["exception"].endswith("RuntimeError: [email]")


def test_workers_log_through_the_same_configuration():
    """Celery's setup_logging signal applies settings.LOGGING (in a process of its own: the
    test run's logging stays as it is)."""
    code = (
        "import logging; from studio.celery import app; app.log.setup(loglevel='INFO'); "  # as a worker starts
        "print(*sorted({type(h.formatter).__name__ for h in logging.getLogger().handlers}))"
    )
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=settings.BASE_DIR,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "RedactingFormatter"
