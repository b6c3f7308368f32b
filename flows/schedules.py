"""Scheduled triggers: cron expressions, and the beat job that starts due runs.

A flow whose latest published version has a ``schedule`` trigger keeps its next fire time in
the database (``Flow.schedule_next_at``); beat scans for due flows every few seconds. No
Celery ETA holds the wait (an ETA longer than the broker's visibility timeout is delivered
twice), and each fire has an idempotency key, so a scan that runs twice starts one run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab
from django.db import transaction
from django.utils import timezone

log = logging.getLogger(__name__)

MAX_DAYS_AHEAD = 366 * 4  # Feb 29 on a Monday comes round within four years… or never


def parse_cron(expression: str) -> crontab:
    fields = (expression or "").split()
    if len(fields) != 5:
        raise ValueError("a cron expression has 5 fields: minute hour day-of-month month day-of-week")
    minute, hour, day_of_month, month, day_of_week = fields
    return crontab(
        minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week
    )


def cron_problem(expression: str) -> str | None:
    try:
        next_fire(expression, timezone.now())
    except ValueError as exc:
        return f"cron: {exc}"
    return None


def next_fire(expression: str, after: datetime) -> datetime:
    """The first minute strictly after ``after`` (UTC) that the expression matches.

    Day of month and day of week must both match (Celery's crontab semantics)."""
    spec = parse_cron(expression)
    start = (after.astimezone(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    hours, minutes = sorted(spec.hour), sorted(spec.minute)
    for offset in range(MAX_DAYS_AHEAD):
        day = (start + timedelta(days=offset)).date()
        if day.month not in spec.month_of_year or day.day not in spec.day_of_month:
            continue
        if day.isoweekday() % 7 not in spec.day_of_week:
            continue
        for hour in hours:
            for minute in minutes:
                candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                if candidate >= start:
                    return candidate
    raise ValueError(f"{expression!r} never fires")


def schedule_refresh(flow) -> None:
    """Recompute a flow's schedule from its latest published version (after publishing)."""
    from flows.graph import CompiledGraph
    from flows.selectors import version_latest

    version = version_latest(flow=flow)
    cron = None
    if version is not None:
        graph = CompiledGraph.from_doc(version.graph)
        config = graph.config(graph.trigger_id) if graph.trigger_id else {}
        if config.get("kind") == "schedule" and config.get("cron"):
            cron = config["cron"]
    flow.schedule_cron = cron or ""
    flow.schedule_next_at = next_fire(cron, timezone.now()) if cron else None
    flow.save(update_fields=["schedule_cron", "schedule_next_at"])


def schedules_fire(now: datetime | None = None, *, batch: int = 100) -> int:
    """Start a run for every flow whose schedule is due; returns how many were started."""
    from flows.models import Flow
    from flows.services import RunRefused, run_request

    now = now or timezone.now()
    started = 0
    with transaction.atomic():
        due = list(
            Flow.objects.select_for_update(skip_locked=True)
            .select_related("tenant")
            .filter(deleted_at__isnull=True, schedule_next_at__lte=now)[:batch]
        )
        for flow in due:
            fire_at = flow.schedule_next_at
            try:
                run_request(flow=flow, version=None, inputs={"scheduled_at": fire_at.isoformat()},
                            trigger="schedule", idempotency_key=f"schedule:{fire_at.isoformat()}")  # fmt: skip
                started += 1
            except RunRefused as exc:
                log.warning("scheduled run of flow %s not started: %s", flow.pk, exc)
            flow.schedule_next_at = next_fire(flow.schedule_cron, max(now, fire_at))
            flow.save(update_fields=["schedule_next_at"])
    return started
