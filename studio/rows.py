"""Model instances from hand-written SQL: the hottest statements (the engine claiming a step or
locking a run, an API key's lookup on every API call) are one round trip each, and still hand
back ordinary model instances (deferred fields load on access, as with ``.defer()``).

Django compiling those queries cost more than PostgreSQL running them: a worker step spent
about half its time building SQL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache, cached_property, lru_cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Field, JSONField, Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.db.transaction import TransactionManagementError
from psycopg.types.json import Jsonb

from studio import jsontext


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
            value if convert is None or value is None else convert(value, None, connection)
            for convert, value in zip(self._converters, values, strict=True)
        ]

    def instance(self, values: Sequence[Any]) -> Model:
        """A model instance from a row, as ``Model.from_db`` makes it (fields left out load on
        access), with its fields set straight into ``__dict__``: ``Model.__init__`` goes through
        every field's descriptor and two signals, 12 µs for a step row against 2 µs here. Only for
        models that no ``pre_init``/``post_init`` receiver watches; the others get ``from_db``."""
        converted = self.converted(values)
        if not self._plain:
            return self.model.from_db(DEFAULT_DB_ALIAS, self._attnames, converted)
        instance = self.model.__new__(self.model)
        instance.__dict__.update(zip(self._attnames, converted, strict=True))
        state = instance._state = ModelState()
        state.adding, state.db = False, DEFAULT_DB_ALIAS
        return instance

    @cached_property
    def _attnames(self) -> list[str]:
        return [field.attname for field in self.fields]

    @cached_property
    def _converters(self) -> list[Any]:
        return [getattr(field, "from_db_value", None) for field in self.fields]

    @cached_property
    def _plain(self) -> bool:
        """Whether instances may skip ``Model.__init__`` (asked at first use, when every app has
        connected its receivers)."""
        return not (pre_init.has_listeners(self.model) or post_init.has_listeners(self.model))


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


def insert(objs: Sequence[Model], also: Sequence[tuple[str, list]] = ()) -> None:
    """INSERT new instances of one model in one statement and give them their ids, as
    ``bulk_create`` does (values prepared as ``db_values`` says, ``auto_now_add`` included)
    without compiling the statement: for a run and its steps, which every started run
    writes, the ORM's compilers cost more than PostgreSQL's insert. No signals are sent. ``also``:
    more statements (SQL, parameters) sent after it in the same query string."""
    if not objs:
        return
    model = type(objs[0])
    plan = _insert_plan(model)
    params = [value for obj in objs for value in db_values(plan, obj, adding=True)]
    sql = ";".join([_insert_sql(model, len(objs)), *(statement for statement, _ in also)])
    with connection.cursor() as cursor:
        cursor.execute(sql, params + [p for _, more in also for p in more])
        ids = [row[0] for row in cursor.fetchall()]
    for obj, pk in zip(objs, ids, strict=True):
        obj.pk = pk
        obj._state.adding, obj._state.db = False, DEFAULT_DB_ALIAS


WritePlan = tuple[tuple[Field, str, object], ...]  # each field, its attname, how it is written


def write_plan(fields: Iterable[Field]) -> WritePlan:
    return tuple((field, field.attname, _how_written(field)) for field in fields)


def db_values(plan: WritePlan, obj: Model, *, adding: bool = False) -> list[Any]:
    """The parameters that write the fields of ``plan`` of ``obj``, as the ORM's
    ``get_db_prep_save`` gives them, in a fraction of its time when a value already has its
    field's Python type (a run and its steps carry about a hundred values): those go as they
    are, JSON through ``jsontext`` (as Django's JSONField: None is SQL NULL); any other value,
    and ``auto_now(_add)`` dates, through the field as the ORM does (``adding``: an INSERT)."""
    out = []
    for field, attname, how in plan:
        if how is _THROUGH_FIELD:  # pre_save: auto_now(_add) stamps the date
            out.append(field.get_db_prep_save(field.pre_save(obj, adding), connection))
            continue
        value = getattr(obj, attname)
        if how is _JSON:
            out.append(None if value is None else Jsonb(value, dumps=jsontext.dumps))
        elif value is None or (type(value) is how and (how is not datetime or value.tzinfo is not None)):
            out.append(value)
        else:
            out.append(field.get_db_prep_save(value, connection))
    return out


_JSON, _THROUGH_FIELD = object(), object()
# Fields whose values of this Python type PostgreSQL's backend writes unchanged (aware datetimes).
_INTEGER_FIELDS = (
    "AutoField",
    "BigAutoField",
    "SmallAutoField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
)
_PLAIN_TYPES: dict[str, type] = {
    **dict.fromkeys(_INTEGER_FIELDS, int),
    **dict.fromkeys(("CharField", "TextField", "SlugField"), str),
    "BooleanField": bool,
    "FloatField": float,
    "DecimalField": Decimal,
    "DateTimeField": datetime,
}


def _how_written(field: Field) -> object:
    """``_JSON``, a Python type written as it is, or ``_THROUGH_FIELD`` (``auto_now(_add)``
    dates included)."""
    if isinstance(field, JSONField) and field.encoder in (None, DjangoJSONEncoder):
        return _JSON
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return _THROUGH_FIELD
    internal = field.target_field.get_internal_type() if field.is_relation else field.get_internal_type()
    return _PLAIN_TYPES.get(internal, _THROUGH_FIELD)


@cache
def _insert_fields(model: type[Model]) -> tuple[Field, ...]:
    return tuple(f for f in model._meta.concrete_fields if f is not model._meta.auto_field)


@cache
def _insert_plan(model: type[Model]) -> WritePlan:
    return write_plan(_insert_fields(model))


@lru_cache(maxsize=64)
def _insert_sql(model: type[Model], count: int) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES {', '.join([row] * count)} RETURNING {quote(model._meta.pk.column)}"
    )


class Trip:
    """The statements of one ``packed_transaction``: BEGIN goes with the first of them, and COMMIT
    with the one the code marks as its last (``commit_with_next``). Installed as the connection's
    execute wrapper for the block."""

    def __init__(self, *, active: bool) -> None:
        self.active = active  # False inside an outer transaction: its BEGIN and COMMIT are not ours
        self.begun = False
        self.committed = False
        self._commit_next = False

    def commit_with_next(self) -> None:
        """COMMIT travels with the next single statement (not an executemany), which must be the
        block's last: a statement after it would run outside the transaction, so it raises."""
        self._commit_next = self.active

    def __call__(self, execute, sql, params, many, context):
        if self.committed:
            raise TransactionManagementError(
                "a statement after the COMMIT sent with this transaction's last statement"
            )
        begin = not self.begun
        self.begun = True
        if many:  # executemany carries no other statement
            if begin:
                execute("BEGIN", None, False, context)
            return execute(sql, params, many, context)
        commit, self._commit_next = self._commit_next, False
        if not (begin or commit):
            return execute(sql, params, many, context)
        result = execute(
            f"{'BEGIN;' if begin else ''}{sql}{';COMMIT' if commit else ''}", params, many, context
        )
        if begin:
            context["cursor"].nextset()  # past BEGIN's empty result, to the caller's first
        self.committed = commit
        return result


@contextmanager
def packed_transaction() -> Iterator[Trip]:
    """``transaction.atomic()`` in two fewer round trips: psycopg sends BEGIN on its own before the
    first statement and Django COMMIT on its own at the end, each a wait on the server (together
    a quarter of a millisecond, a tenth of a worker step). Here BEGIN is sent with the first
    statement and COMMIT with the one marked last; when none is marked, Django commits as usual.
    On an error Django rolls back as usual (psycopg sends ROLLBACK whenever the server is in a
    transaction). Hooks from ``transaction.on_commit`` run after the block, as with ``atomic``.
    Inside an outer transaction this is a plain ``atomic`` (a savepoint)."""
    with transaction.atomic():
        trip = Trip(active=len(connection.atomic_blocks) == 1)
        if not trip.active:
            yield trip
            return
        # Django believes it is in a transaction (its on_commit hooks wait for the block's end);
        # psycopg, left in autocommit, sends no BEGIN of its own: the first statement carries it.
        connection.connection.autocommit = True
        with connection.execute_wrapper(trip):
            yield trip
