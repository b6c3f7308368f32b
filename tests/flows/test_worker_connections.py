"""Workers keep their PostgreSQL connections across tasks; steps read their run's context once."""

from __future__ import annotations

import pytest
from django.db import connection

from flows import engine
from flows.models import Run, RunStatus
from tests.factories import make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, start, wait_run

ITEMS = 90


def sessions_opened() -> int:
    """Connections ever made to the test database (PostgreSQL counts them as they start)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_prefork_and_thread_workers_do_not_reconnect_for_every_task():
    # A map of 90 children: the map step and 90 "child finished" tasks run on the prefork
    # worker, the children's steps on the thread pool. Reconnecting per task (what Celery's
    # Django fix-up does unless told otherwise) would open at least one session per task.
    tenant = make_tenant("Steady")
    child = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("llm", "llm", provider="scripted", model="claude-haiku-4-5",
                                          prompt="{{ input.n }}", script={"default": "ok"}), node("out", "output")],
        [edge("trigger", "llm"), edge("llm", "out")],
    ), name="child")  # fmt: skip
    parent = published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("each", "map", items="input.numbers", flow={"id": child.pk, "version": 1}, concurrency=4,
              item_input={"n": "{{ item }}"}),
         node("out", "output")],
        [edge("trigger", "each"), edge("each", "out")],
    ))  # fmt: skip
    wait_run(start(parent, {"numbers": [0]}))  # every worker thread in use has connected by now… mostly
    before = sessions_opened()
    run = wait_run(start(parent, {"numbers": list(range(ITEMS))}), timeout=120)
    opened = sessions_opened() - before
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert Run.objects.filter(parent_step__run=run).count() == ITEMS
    # at most one new session per worker thread or process that had not connected yet
    assert opened < ITEMS // 3, f"{opened} database sessions opened for {ITEMS * 3} tasks"


@pytest.mark.django_db(transaction=True)
def test_run_context_is_read_once_and_refreshed_after_its_ttl(monkeypatch):
    tenant = make_tenant("Cached")
    flow = published_flow(tenant, graph([node("trigger", "trigger"), node("out", "output")],
                                        [edge("trigger", "out")]))  # fmt: skip
    run = wait_run(start(flow, {"q": "hello"}))
    first = engine.run_context(run.pk, "running")
    assert (first.inputs, first.status, first.tenant.pk, first.flow.pk) == (
        {"q": "hello"},
        "running",
        tenant.pk,
        flow.pk,
    )
    first.status = "failed"  # each call hands out its own instances
    flow.granted_capabilities = ["http"]
    flow.save(update_fields=["granted_capabilities"])
    assert engine.run_context(run.pk, "running").flow.granted_capabilities == []  # within the TTL
    monkeypatch.setattr(engine, "RUN_CONTEXT_TTL_S", 0.0)
    again = engine.run_context(run.pk, "waiting")
    assert (again.status, again.flow.granted_capabilities) == ("waiting", ["http"])
