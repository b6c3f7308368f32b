"""``studio.rows.insert``: new rows written by hand-written SQL read back as the ORM wrote them."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from psycopg import pq
from psycopg.types.json import Jsonb

from flows.graph import graph_doc, node_doc
from flows.models import Run, RunStatus, StepRun
from studio.rows import Columns, db_values, insert, packed_transaction, write_plan
from tests.factories import make_tenant
from tests.flows.helpers import published_flow
from tests.pg import queries_sent

pytestmark = pytest.mark.django_db


def _trigger_flow():
    """A published flow of a new tenant (``flow.tenant``) with only a trigger: something for runs to belong to."""
    return published_flow(make_tenant(), graph_doc([node_doc("trigger", "trigger")], []))


def test_inserted_rows_get_their_ids_defaults_and_prepared_values():
    flow = _trigger_flow()
    tenant = flow.tenant
    before = timezone.now()
    run = Run(
        tenant=tenant,
        flow=flow,
        inputs={"text": "héllo", "n": [1, 2]},
        trigger="api",
        cost_usd=Decimal("0.125"),
    )
    insert([run])
    assert run.pk is not None and not run._state.adding
    assert run.created_at >= before  # auto_now_add, as save() sets it

    steps = [StepRun(run=run, node_id=f"n{i}", node_type="llm", idempotency_key=f"k{i}") for i in range(3)]
    insert(steps)
    assert [s.pk for s in steps] == sorted(s.pk for s in steps)  # ids in the order given

    stored = Run.objects.get(pk=run.pk)
    assert stored.inputs == {"text": "héllo", "n": [1, 2]}
    assert stored.cost_usd == Decimal("0.125") and stored.created_at == run.created_at
    assert stored.status == "queued" and stored.draft_graph is None  # model defaults
    by_id = {s.pk: s for s in StepRun.objects.filter(run=run)}
    for step in steps:
        row = by_id[step.pk]
        assert (row.node_id, row.idempotency_key, row.handles, row.attempts) == (
            step.node_id,
            step.idempotency_key,
            [],
            [],
        )


def test_inserting_nothing_sends_nothing(django_assert_num_queries):
    with django_assert_num_queries(0):
        insert([])


def _as_the_orm_prepares(obj, adding: bool) -> list:
    fields = [f for f in type(obj)._meta.concrete_fields if f is not type(obj)._meta.auto_field]
    return [f.get_db_prep_save(f.pre_save(obj, adding), connection) for f in fields]


def _comparable(value):
    if isinstance(value, Jsonb):
        return ("json", value.obj)
    if isinstance(value, int) and not isinstance(value, bool):
        return (int, int(value))  # psycopg's Int4/Int8 wrappers the ORM adds only type a bound parameter
    return (type(value), value)


@pytest.mark.parametrize("adding", [True, False])
def test_db_values_are_the_values_the_orm_writes(adding):
    """The fast path gives the ORM's parameters: values of the field's own type pass as they are,
    others (an enum member for a CharField, an int for a FloatField or DecimalField, a naive
    datetime) go through the field, JSON None is SQL NULL, ``auto_now_add`` stamps on INSERT."""
    flow = _trigger_flow()
    run = Run(
        tenant=flow.tenant,
        flow=flow,
        status=RunStatus.RUNNING,  # a str subclass: the field makes it a plain str
        inputs={"when": "x", "n": [1, 2]},
        outputs=None,
        trigger="api",
        item_index=3,
        started_at=timezone.now(),
        finished_at=datetime(2026, 1, 2, 3, 4, 5),  # naive: the field makes it aware, with a warning
        tokens_in=7,
        cost_usd=2,  # an int: the field makes it a Decimal
    )
    step = StepRun(run_id=1, node_id="a", node_type="llm", idempotency_key="k", timeout_s=30, confidence=0.5)
    for obj in (run, step):
        fields = [f for f in type(obj)._meta.concrete_fields if f is not type(obj)._meta.auto_field]
        with pytest.warns(RuntimeWarning) if obj is run else nullcontext():
            ours = db_values(write_plan(fields), obj, adding=adding)
        with pytest.warns(RuntimeWarning) if obj is run else nullcontext():
            theirs = _as_the_orm_prepares(obj, adding)
        for field, mine, orm in zip(fields, ours, theirs, strict=True):
            if field.name == "created_at" and adding:
                assert mine is not None and orm is not None  # each call stamps its own now()
                continue
            assert _comparable(mine) == _comparable(orm), field.name
    assert db_values(write_plan([Run._meta.get_field("outputs")]), run) == [None]  # SQL NULL, not 'null'


# -- packed_transaction ---------------------------------------------------------------------


def _count(tenant_id: int) -> int:
    return Run.objects.filter(tenant_id=tenant_id).count()


def _insert_run(flow) -> None:
    run = Run(tenant=flow.tenant, flow=flow, inputs={}, trigger="api")
    insert([run])


@pytest.mark.django_db(transaction=True)
def test_a_packed_transaction_sends_begin_and_commit_with_its_statements():
    flow = _trigger_flow()
    tenant = flow.tenant
    committed: list[bool] = []

    def work():
        with packed_transaction() as trip:
            _insert_run(flow)
            transaction.on_commit(lambda: committed.append(True))
            trip.commit_with_next()
            _insert_run(flow)
            assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE
            assert not committed  # hooks wait for the block's end, as with atomic
            with pytest.raises(TransactionManagementError):
                _insert_run(flow)  # it would run outside the transaction

    queries = queries_sent(work)
    assert len(queries) == 2, queries
    assert queries[0].lstrip('"').startswith("BEGIN;") and queries[1].rstrip('"').endswith(";COMMIT")
    assert committed == [True] and _count(tenant.pk) == 2


@pytest.mark.django_db(transaction=True)
def test_a_packed_transaction_rolls_back_on_an_error_and_commits_unmarked():
    flow = _trigger_flow()
    tenant = flow.tenant
    with pytest.raises(RuntimeError), packed_transaction():
        _insert_run(flow)
        _insert_run(flow)
        raise RuntimeError("the work failed")
    assert _count(tenant.pk) == 0
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE

    def unmarked():
        with packed_transaction():
            _insert_run(flow)

    queries = queries_sent(unmarked)
    assert [q.strip('"') for q in queries][1:] == ["COMMIT"]  # Django's own COMMIT, no BEGIN of psycopg's
    assert _count(tenant.pk) == 1


@pytest.mark.django_db(transaction=True)
def test_inside_an_outer_transaction_it_is_a_savepoint_of_it():
    flow = _trigger_flow()
    tenant = flow.tenant
    with pytest.raises(RuntimeError), transaction.atomic():
        with packed_transaction() as trip:
            assert not trip.active
            trip.commit_with_next()
            _insert_run(flow)  # no COMMIT sent: the outer transaction's
        raise RuntimeError("the outer work failed")
    assert _count(tenant.pk) == 0


# -- Columns.instance ----------------------------------------------------------------------


def test_an_instance_from_a_row_is_the_one_the_orm_reads():
    flow = _trigger_flow()
    tenant = flow.tenant
    run = Run(tenant=tenant, flow=flow, inputs={"n": [1, 2]}, trigger="api", cost_usd=Decimal("0.5"))
    insert([run])
    step = StepRun(run=run, node_id="a", node_type="llm", idempotency_key="k", output={"text": "é"})
    insert([step])
    columns = Columns.of(StepRun, "s", defer=["inputs"])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns.sql} FROM {columns.table} WHERE s.id = %s", [step.pk])
        made = columns.instance(cursor.fetchone())
    orm = StepRun.objects.get(pk=step.pk)
    assert made.__class__ is StepRun and not made._state.adding and made._state.db == "default"
    for field in StepRun._meta.concrete_fields:
        if field.name != "inputs":
            assert getattr(made, field.attname) == getattr(orm, field.attname), field.name
    assert made.get_deferred_fields() == {"inputs"}
    assert made.inputs is None  # a deferred field loads on access, as after .defer()
    assert made.run.inputs == {"n": [1, 2]}  # relations load as usual
    made.output = {"text": "changed"}
    made.save(update_fields=["output"])  # an UPDATE of the existing row, not an INSERT
    assert StepRun.objects.get(pk=step.pk).output == {"text": "changed"}
    assert StepRun.objects.filter(run=run).count() == 1


def test_the_engines_long_statements_are_parsed_once():
    """psycopg keeps parsed query strings of up to ``MAX_CACHED_STATEMENT_PARAMS`` parameters,
    50 unless raised (``studio.pgadapt``): a run's three steps inserted at once have 72."""
    from psycopg import _queries

    flow = _trigger_flow()
    tenant = flow.tenant
    run = Run(tenant=tenant, flow=flow, inputs={}, trigger="api")
    insert([run])

    def three_steps(tag: str) -> None:
        insert(
            [StepRun(run=run, node_id=f"{tag}{i}", node_type="llm", idempotency_key=tag) for i in range(3)]
        )

    three_steps("a")
    before = _queries._query2pg_client.cache_info()
    three_steps("b")
    after = _queries._query2pg_client.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
