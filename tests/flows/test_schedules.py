"""Scheduled triggers: cron parsing, validation, and the beat job that starts due runs once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from flows.graph import check_well_formed, validate
from flows.models import Flow, Run
from flows.schedules import next_fire, schedules_fire
from tests.factories import make_tenant
from tests.flows.helpers import edge, graph, node, published_flow


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("*/15 * * * *", datetime(2026, 11, 25, 9, 7, tzinfo=UTC), datetime(2026, 11, 25, 9, 15, tzinfo=UTC)),
        ("0 9 * * 1-5", datetime(2026, 11, 27, 9, 0, tzinfo=UTC), datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
        ("30 6 1 * *", datetime(2026, 12, 15, tzinfo=UTC), datetime(2027, 1, 1, 6, 30, tzinfo=UTC)),
    ],
)
def test_next_fire(cron, after, expected):
    assert next_fire(cron, after) == expected


def test_a_bad_cron_is_a_problem_on_the_trigger():
    doc = graph([node("trigger", "trigger", kind="schedule", cron="61 * * * *"), node("o", "output")],
                [edge("trigger", "o")])  # fmt: skip
    assert [p.as_dict() for p in validate(check_well_formed(doc))] == [
        {"node": "trigger", "message": "cron: Invalid end range: 61 > 59."}
    ]
    doc["nodes"][0]["config"] = {"kind": "schedule"}
    assert validate(doc)[0].message.startswith("a schedule trigger needs a cron expression")


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("celery_worker")
def test_a_due_schedule_starts_one_run_and_moves_on():
    flow = published_flow(make_tenant("Cron"), graph(
        [node("trigger", "trigger", kind="schedule", cron="*/5 * * * *"), node("o", "output")],
        [edge("trigger", "o")],
    ))  # fmt: skip
    flow.refresh_from_db()
    assert flow.schedule_cron == "*/5 * * * *" and flow.schedule_next_at > timezone.now()
    due = timezone.now() - timedelta(seconds=1)
    Flow.objects.filter(pk=flow.pk).update(schedule_next_at=due)
    assert schedules_fire() == 1
    assert schedules_fire() == 0  # nothing due any more
    [run] = Run.objects.filter(flow=flow)
    assert run.trigger == "schedule" and run.inputs == {"scheduled_at": due.isoformat()}
    flow.refresh_from_db()
    assert flow.schedule_next_at > timezone.now()
    # The same fire time again (a scan racing another) is the same run.
    Flow.objects.filter(pk=flow.pk).update(schedule_next_at=due)
    schedules_fire()
    assert Run.objects.filter(flow=flow).count() == 1
