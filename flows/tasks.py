"""Celery tasks: thin — take ids, call the engine, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from flows import engine, retention
from studio.celery import next_round

TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="flows.step_execute", **TASK_OPTIONS)
def step_execute_task(step_id: int, run_id: int | None = None) -> None:
    """Run one step (claimed by compare-and-set, so a redelivery does nothing). ``run_id`` saves
    the worker a read (messages sent before it was added have none)."""
    engine.step_execute(step_id, run_id)


@shared_task(name="flows.child_run_finished", **TASK_OPTIONS)
def child_run_finished_task(run_id: int) -> None:
    """Tell a waiting map / sub-flow step that one of its child runs ended."""
    engine.child_run_finished(run_id)


@shared_task(name="flows.run_cancel", **TASK_OPTIONS)
def run_cancel_task(run_id: int) -> None:
    engine.run_cancel(run_id)


@shared_task(name="flows.steps_recover", ignore_result=True)
def steps_recover_task() -> dict:
    """Beat: re-queue steps whose worker was lost (lease expired) and time out overdue runs."""
    return engine.steps_recover()


@shared_task(name="flows.runs_retention", ignore_result=True)
def runs_retention_task(round_no: int = 0) -> dict:
    """Beat: remove runs past their tenant's retention, one bounded batch per tenant; when a
    batch was full, the next round is enqueued at once. Safe twice at once (SKIP LOCKED)."""
    result = retention.retention_enforce()
    next_round(runs_retention_task, round_no, more=result.more)
    return {"runs": result.runs, "more": result.more}


@shared_task(name="flows.schedules_fire", ignore_result=True)
def schedules_fire_task() -> int:
    """Beat: start the runs of scheduled flows that are due."""
    from flows.schedules import schedules_fire

    return schedules_fire()
