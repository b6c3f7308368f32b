"""Model instances from hand-written SQL: the hottest statements (the engine claiming a step or
locking a run, an API key's lookup on every API call) are one round trip each, and still hand
back ordinary model instances (deferred fields load on access, as with ``.defer()``).

Django compiling those queries cost more than PostgreSQL running them: a worker step spent
about half its time building SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
