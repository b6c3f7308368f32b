"""Round trips to PostgreSQL: workers keep their connections across tasks, steps read their run's
context once, and starting or finishing a small run takes as few as it can."""

from __future__ import annotations

import pytest
from django.db import connection

from flows import engine
from flows.models import Run, RunStatus, StepRun, StepStatus
from tests.factories import make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, wait_run
from tests.pg import queries_sent

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


@pytest.mark.django_db(transaction=True)
def test_a_claim_given_its_run_reads_a_new_runs_context_in_the_same_round_trip():
    # Steps made ready by hand, no task sent: nothing but this test claims them.
    tenant = make_tenant("Claims")
    flow = published_flow(tenant, graph([node("trigger", "trigger"), scripted_llm("a"), scripted_llm("b")],
                                        [edge("trigger", "a"), edge("trigger", "b")]))  # fmt: skip
    run, steps = engine.run_create(flow=flow, version=flow.versions.get(), inputs={"q": "hi"}, trigger="api",
                                   started=True)  # fmt: skip
    by_node = {step.node_id: step for step in steps}
    StepRun.objects.filter(run=run, node_id__in=["a", "b"]).update(status=StepStatus.QUEUED)
    engine._run_contexts.clear()

    claimed = []

    def claim_a():
        step, _ = engine.step_claim(by_node["a"].pk, run.pk)
        claimed_run = step.run
        claimed.append(
            (claimed_run.inputs, claimed_run.status, claimed_run.flow.name, claimed_run.tenant.slug)
        )

    sent = queries_sent(claim_a)
    assert len(sent) == 1 and "JOIN" in sent[0], sent  # claim and context: one round trip
    assert claimed == [({"q": "hi"}, RunStatus.RUNNING, flow.name, tenant.slug)]

    sent = queries_sent(lambda: claimed.append(engine.step_claim(by_node["b"].pk, run.pk)[0]))
    assert len(sent) == 1 and "JOIN" not in sent[0], sent  # the context is kept: the claim alone
    assert (claimed[-1].status, claimed[-1].run.flow.pk) == (StepStatus.RUNNING, flow.pk)
    assert engine.step_claim(by_node["b"].pk, run.pk) is None  # claimed already: nothing to claim


def _ask_flow(tenant_name: str):
    """trigger → a scripted model step → output, published for a new tenant."""
    return published_flow(make_tenant(tenant_name), graph(
        [node("trigger", "trigger"), scripted_llm("ask", "{{ input.q }}", script={"default": "ok"}),
         node("out", "output", mapping={"answer": "{{ nodes.ask.output.text }}"})],
        [edge("trigger", "ask"), edge("ask", "out")],
    ))  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_small_runs_last_worker_step_ends_it_in_three_round_trips():
    # trigger → model → output, the model step executed here (no task sent, no worker involved):
    # claim (with the run's context), then the run read whole under its lock, then the writes
    # with the commit. The output runs inline and ends the run without reading anything more.
    flow = _ask_flow("Trips")
    run, _ = engine.run_create(flow=flow, version=flow.versions.get(), inputs={"q": "hi"}, trigger="api",
                               started=True)  # fmt: skip
    StepRun.objects.filter(run=run, node_id="trigger").update(status=StepStatus.SUCCEEDED, output={"q": "hi"})
    ask = StepRun.objects.get(run=run, node_id="ask")
    StepRun.objects.filter(pk=ask.pk).update(status=StepStatus.QUEUED)
    engine._run_contexts.clear()

    sent = queries_sent(lambda: engine.step_execute(ask.pk, run.pk))
    assert len(sent) == 3, sent
    run.refresh_from_db()
    assert (run.status, run.outputs) == (RunStatus.SUCCEEDED, {"answer": "ok"})
    assert run.tokens_in == StepRun.objects.get(pk=ask.pk).tokens_in > 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_starting_a_run_takes_two_round_trips_its_steps_inserted_as_launched():
    # BEGIN with the run's INSERT; then its steps, inserted as the launch left them (trigger done
    # inline, the model step queued), with the COMMIT. The worker then runs it to the end.
    flow = _ask_flow("Starts")
    version = flow.versions.get()
    engine._compiled_version(version.pk)  # compiled once per process, at its first run
    started = []
    sent = queries_sent(
        lambda: started.append(
            engine.run_start(flow=flow, version=version, inputs={"q": "hi"}, trigger="api")
        )
    )
    assert len(sent) == 2, sent
    assert sent[0].lstrip('"').startswith("BEGIN;INSERT") and sent[1].rstrip('"').endswith(";COMMIT")
    run = wait_run(started[0])
    assert (run.status, run.outputs) == (RunStatus.SUCCEEDED, {"answer": "ok"}), run.error
    trigger, ask = (run.steps.get(node_id=n) for n in ("trigger", "ask"))
    assert trigger.finished_at <= ask.queued_at  # queued by the launch, inline, before the insert


@pytest.mark.django_db(transaction=True)
def test_a_run_that_ends_as_it_starts_writes_its_steps_and_its_end_at_once():
    # Only inline steps: the run ends inside run_start; its steps and its outputs in one string.
    tenant = make_tenant("Inline")
    flow = published_flow(tenant, graph(
        [node("trigger", "trigger"), node("t", "transform", mapping={"n": "{{ input.n + 1 }}"}),
         node("out", "output", mapping={"n": "{{ nodes.t.output.n }}"})],
        [edge("trigger", "t"), edge("t", "out")],
    ))  # fmt: skip
    version = flow.versions.get()
    engine._compiled_version(version.pk)
    started = []
    sent = queries_sent(
        lambda: started.append(engine.run_start(flow=flow, version=version, inputs={"n": 1}, trigger="api"))
    )
    assert len(sent) == 2, sent
    run = Run.objects.get(pk=started[0].pk)
    assert (run.status, run.outputs) == (RunStatus.SUCCEEDED, {"n": 2})
    assert set(StepRun.objects.filter(run=run).values_list("status", flat=True)) == {StepStatus.SUCCEEDED}
