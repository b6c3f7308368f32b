"""How psycopg turns queries and rows into Python here: two defaults changed for speed, both
giving the same values as before.

- **Parsed statements.** psycopg parses a query string's placeholders once and keeps the
  result (an LRU of 128 strings), but only for strings of at most 50 parameters. The engine's
  hottest statements have more: a run's steps inserted at once (24 per step), a step and its
  successor saved in one string (21 each). Parsed every time, they cost a three-node run 0.33
  ms of its 3.5 ms of CPU. The limit is a module constant of psycopg's, not a setting;
  ``tests/studio/test_rows.py`` notices if a psycopg upgrade drops it.
- **Timestamps.** Django reads ``timestamptz`` with a loader of its own, a Python subclass of
  psycopg's, so that every value gets the connection's time zone as its ``tzinfo``. Being
  Python, it parses each value in Python (2.7 µs here, against 0.15 µs in psycopg's C loader)
  and sets itself up again for every cursor: a worker step reads about twenty timestamps, and a
  page of runs a few hundred. When the database session's time zone is UTC, as Django sets it
  with ``USE_TZ`` and ``TIME_ZONE = "UTC"``, psycopg's own loader gives the very same values
  (``datetime.timezone.utc`` as ``tzinfo``), so connections like that load them with it.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from psycopg import adapters
from psycopg.adapt import Loader
from psycopg.pq import Format

PSYCOPG_CACHED_STATEMENT_PARAMS = 1000
TIMESTAMPTZ_OID = 1184


def cache_parsed_statements() -> None:
    from psycopg import _queries

    if hasattr(_queries, "MAX_CACHED_STATEMENT_PARAMS"):
        _queries.MAX_CACHED_STATEMENT_PARAMS = max(
            _queries.MAX_CACHED_STATEMENT_PARAMS, PSYCOPG_CACHED_STATEMENT_PARAMS
        )


class UtcTimestamptzLoader(Loader):
    """psycopg's own ``timestamptz`` loader (its C one when installed) for sessions in UTC.
    ``timezone`` is what Django's ``create_cursor`` compares with the connection's before
    putting its own loader back."""

    timezone = UTC
    _psycopg_loader = adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        self.load = self._psycopg_loader(oid, context).load  # no Python frame per value

    def load(self, data):  # replaced per instance in __init__
        raise NotImplementedError


def load_timestamps_in_c(sender: Any, connection: Any, **kwargs: Any) -> None:
    """``connection_created``: a PostgreSQL connection whose session is in UTC, for a Django
    connection that wants UTC, loads timestamps with ``UtcTimestamptzLoader``."""
    if connection.vendor != "postgresql" or connection.timezone is not UTC:
        return
    pg = connection.connection
    if pg.pgconn.parameter_status(b"TimeZone") == b"UTC":
        pg.adapters.register_loader(TIMESTAMPTZ_OID, UtcTimestamptzLoader)
