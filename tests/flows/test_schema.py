"""The run and step tables' indexes, as migrated: what the engine writes for every run and step."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _indexes(table: str) -> dict[str, tuple[list[str], bool]]:
    """Index name → (its columns in order, whether it is partial)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname, array_agg(a.attname ORDER BY k.ord), x.indpred IS NOT NULL
            FROM pg_index x
            JOIN pg_class i ON i.oid = x.indexrelid
            JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) ON true
            JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
            WHERE x.indrelid = %s::regclass
            GROUP BY i.relname, x.indpred
            """,
            [table],
        )
        return {name: (list(columns), partial) for name, columns, partial in cursor.fetchall()}


def _foreign_keys(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid "
            "AND a.attnum = c.conkey[1] WHERE c.conrelid = %s::regclass AND c.contype = 'f'",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.parametrize("table", ["flows_run", "flows_steprun"])
def test_every_foreign_key_is_served_by_one_full_index_leading_with_it(table):
    indexes = _indexes(table)
    for column in _foreign_keys(table):
        leading = [
            name for name, (columns, partial) in indexes.items() if columns[0] == column and not partial
        ]
        assert leading, f"{table}.{column}: no index leads with it (deletes would scan the table)"
        alone = [name for name in leading if indexes[name][0] == [column]]
        assert not (alone and len(leading) > 1), f"{table}.{column}: {alone} is covered by {leading}"
