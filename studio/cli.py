"""``studio`` / ``manage.py``: fill in the embedded default, then run a Django command.

Configuration problems end with one line on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    command = argv[1] if len(argv) > 1 else "help"

    from django.core.exceptions import ImproperlyConfigured

    from studio.embedded import EmbeddedError, prepare_environment

    try:
        prepare_environment(exclusive=command == "up")
        from django.core.management import execute_from_command_line

        execute_from_command_line(argv)
    except (ImproperlyConfigured, EmbeddedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
