"""``studio.rows.insert``: new rows written by hand-written SQL read back as the ORM wrote them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from flows.graph import graph_doc, node_doc
from flows.models import Run, StepRun
from studio.rows import insert
from tests.factories import make_tenant
from tests.flows.helpers import published_flow

pytestmark = pytest.mark.django_db


def test_inserted_rows_get_their_ids_defaults_and_prepared_values():
    tenant = make_tenant()
    flow = published_flow(tenant, graph_doc([node_doc("trigger", "trigger")], []))
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
