"""Model instances from hand-written SQL: the hottest statements (the engine claiming a step or
locking a run, an API key's lookup on every API call) are one round trip each, and still hand
back ordinary model instances (deferred fields load on access, as with ``.defer()``).

Django compiling those queries cost more than PostgreSQL running them: a worker step spent
about half its time building SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Field, Model


@dataclass(frozen=True)
class Columns:
    """The columns of one model in a statement, under a table alias."""

    model: type[Model]
    alias: str
    fields: tuple[Field, ...]

    @classmethod
    def of(
        cls, model: type[Model], alias: str, *, defer: Iterable[str] = (), only: Iterable[str] = ()
    ) -> Columns:
        skip, keep = set(defer), set(only)
        fields = model._meta.concrete_fields
        return cls(
            model, alias, tuple(f for f in fields if f.name not in skip and (not keep or f.name in keep))
        )

    @property
    def table(self) -> str:
        return f"{connection.ops.quote_name(self.model._meta.db_table)} {self.alias}"

    @property
    def sql(self) -> str:
        return ", ".join(f"{self.alias}.{connection.ops.quote_name(f.column)}" for f in self.fields)

    def converted(self, values: Sequence[Any]) -> list[Any]:
        """Python values from database values (JSON decoded), as the ORM would give them."""
        return [
            field.from_db_value(value, None, connection)
            if value is not None and hasattr(field, "from_db_value")
            else value
            for field, value in zip(self.fields, values, strict=True)
        ]

    def instance(self, values: Sequence[Any]) -> Model:
        return self.model.from_db(DEFAULT_DB_ALIAS, [f.attname for f in self.fields], self.converted(values))


def select_list(*parts: Columns) -> str:
    return ", ".join(part.sql for part in parts)


def instances(row: Sequence[Any], *parts: Columns) -> list[Model]:
    """Split one result row into an instance per part, in the order of ``select_list``."""
    out, start = [], 0
    for part in parts:
        end = start + len(part.fields)
        out.append(part.instance(row[start:end]))
        start = end
    return out


def insert(objs: Sequence[Model]) -> None:
    """INSERT new instances of one model in one statement and give them their ids, as
    ``bulk_create`` does (values prepared by each field as the ORM prepares them, ``auto_now_add``
    included) without compiling the statement: for a run and its steps, which every started run
    writes, the ORM's compilers cost more than PostgreSQL's insert. No signals are sent."""
    if not objs:
        return
    model = type(objs[0])
    fields = _insert_fields(model)
    prepared = [
        [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]  # pre_save: auto_now_add
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(model, len(objs)), [value for row in prepared for value in row])
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS


@cache
def _insert_fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(f for f in model._meta.concrete_fields if f is not model._meta.auto_field)


def _insert_sql(model: type[Model], count: int) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * count)} RETURNING {quote(model._meta.pk.column)}"
    )
