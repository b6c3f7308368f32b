"""Log lines as operators read them: plain text or one JSON object per line, always redacted.

Both formatters pass the finished text (message, exception and stack included) through the
built-in redaction rules, so an email address, card or phone number that reaches a log call
(an error echoing a request, a task's arguments) is written as ``[email]``, ``[card]``,
``[phone]``. ``STUDIO_LOG_FORMAT=json`` picks the JSON lines (``settings.LOGGING``); Celery
workers use the same configuration (``studio.celery``).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from studio.governance.redaction import redact

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "exception"?, …extra}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = redact(value) if isinstance(value, str) else value
        return json.dumps(entry, ensure_ascii=False, default=str)
