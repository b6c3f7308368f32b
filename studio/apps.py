from __future__ import annotations

from django.apps import AppConfig

# psycopg parses a query string's placeholders once and keeps the result (an LRU of 128 strings),
# but only for strings of at most 50 parameters. The engine's hottest statements have more: a
# run's steps inserted at once (24 per step), a step and its successor saved in one string (21
# each). Parsed every time, they cost a three-node run 0.33 ms of its 3.5 ms of CPU. The limit is
# a module constant of psycopg's, not a setting; ``tests/studio/test_rows.py`` notices if a
# psycopg upgrade drops it.
PSYCOPG_CACHED_STATEMENT_PARAMS = 1000


def cache_parsed_statements() -> None:
    from psycopg import _queries

    if hasattr(_queries, "MAX_CACHED_STATEMENT_PARAMS"):
        _queries.MAX_CACHED_STATEMENT_PARAMS = max(
            _queries.MAX_CACHED_STATEMENT_PARAMS, PSYCOPG_CACHED_STATEMENT_PARAMS
        )


class StudioConfig(AppConfig):
    name = "studio"
    label = "studio"
    verbose_name = "Agent Flow Studio"

    def ready(self) -> None:
        cache_parsed_statements()
