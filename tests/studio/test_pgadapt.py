"""``studio.pgadapt``: timestamps read with psycopg's own loader when the session is in UTC, with
the same values Django's loader gives."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import Format

from studio.pgadapt import TIMESTAMPTZ_OID, UtcTimestamptzLoader

pytestmark = pytest.mark.django_db

VALUES_SQL = (
    "SELECT '2026-12-08 01:37:13.123456+00'::timestamptz, '2026-06-01 12:00:00.5-07'::timestamptz,"
    " '0001-01-01 00:00:00+00'::timestamptz, NULL::timestamptz"
)
EXPECTED = (
    datetime(2026, 12, 8, 1, 37, 13, 123456, tzinfo=UTC),
    datetime(2026, 6, 1, 19, 0, 0, 500000, tzinfo=UTC),
    datetime(1, 1, 1, tzinfo=UTC),
    None,
)


def _loader(wrapper) -> type:
    with wrapper.cursor() as cursor:  # Django's create_cursor may register its own on the cursor
        return cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)


def test_a_utc_session_reads_timestamps_with_psycopgs_loader_and_the_same_values():
    connection.ensure_connection()
    assert _loader(connection) is UtcTimestamptzLoader
    with connection.cursor() as cursor:
        cursor.execute(VALUES_SQL)
        row = cursor.fetchone()
    assert row == EXPECTED
    assert all(value.tzinfo is UTC for value in row[:3])  # what Django's loader sets


def test_a_session_in_another_time_zone_keeps_djangos_loader():
    settings = copy.deepcopy(connection.settings_dict)
    settings["TIME_ZONE"] = "Asia/Kolkata"
    settings["OPTIONS"].pop("pool", None)  # one connection, closed below
    other = DatabaseWrapper(settings, alias="pgadapt_other")
    try:
        loader = _loader(other)
        assert loader is not UtcTimestamptzLoader and issubclass(loader, BaseTzLoader)
        with other.cursor() as cursor:
            cursor.execute(VALUES_SQL)
            row = cursor.fetchone()
        assert row[:2] == EXPECTED[:2]  # the same instants
        assert row[0].utcoffset() == timedelta(hours=5, minutes=30)  # in the connection's zone
    finally:
        other.close()
