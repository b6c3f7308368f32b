#!/usr/bin/env python
"""Django's command-line utility, with the studio's embedded default (see studio/cli.py)."""

from __future__ import annotations

from studio.cli import main

if __name__ == "__main__":
    main()
