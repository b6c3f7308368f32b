"""Run history retention: old ended runs go with their steps, child runs and reviews; nothing
else does; each pass is audited; admins set it on the Run history page."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from flows import retention
from flows.models import Run, RunStatus, StepRun
from flows.tasks import runs_retention_task
from studio.governance.models import AuditEntry
from studio.inbox.models import ReviewTask
from studio.inbox.services import review_decide
from studio.tenants.roles import Role
from studio.tenants.selectors import Actor
from studio.tenants.services import tenant_settings_set
from tests.conftest import wait_for
from tests.factories import PASSWORD, make_member, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start, wait_run
from tests.studio.inbox.helpers import approval_flow, wait_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def keep(tenant, days):
    return tenant_settings_set(tenant=tenant, path=("runs", "keep_days"), value=days, actor="test")


def aged(run: Run, days: float) -> Run:
    """The run as if it had started ``days`` ago (its children too)."""
    then = timezone.now() - timedelta(days=days)
    Run.objects.filter(pk=run.pk).update(created_at=then)
    Run.objects.filter(parent_step__run=run).update(created_at=then)
    return run


def small_flow(tenant, name="small"):
    return published_flow(
        tenant, graph([node("t", "trigger"), node("o", "output")], [edge("t", "o")]), name=name
    )


def parent_with_child(tenant):
    child = published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("ask", script={"responses": ["ok"]}), node("out", "output")],
        [edge("trigger", "ask"), edge("ask", "out")],
    ), name="child")  # fmt: skip
    return published_flow(tenant, graph(
        [node("trigger", "trigger"), node("sub", "subflow", flow={"id": child.pk, "version": 1}, inputs={}),
         node("out", "output")],
        [edge("trigger", "sub"), edge("sub", "out")],
    ), name="parent")  # fmt: skip


def test_old_ended_runs_go_with_their_steps_child_runs_and_reviews_and_nothing_else_does():
    tenant, other = make_tenant("Forgetful"), make_tenant("Keeper")
    keep(tenant, 30)
    owner = make_member(tenant, Role.OWNER)

    parent = aged(wait_run(start(parent_with_child(tenant))), 31)
    assert parent.status == RunStatus.SUCCEEDED
    child = Run.objects.get(parent_step__run=parent)
    reviewed = start(approval_flow(tenant), {"amount": 12})
    review = wait_review(reviewed)
    review_decide(review=review, actor=Actor(tenant=tenant, role=Role.OWNER, user=owner), decision="reject",
                  comment="no")  # fmt: skip
    aged(wait_run(reviewed), 40)
    waiting = start(approval_flow(tenant, name="still waiting"), {"amount": 5})  # old, but it has not ended
    wait_review(waiting)
    aged(waiting, 90)
    recent = aged(wait_run(start(small_flow(tenant))), 29)
    elsewhere = aged(wait_run(start(small_flow(other))), 400)  # its tenant keeps runs
    doomed = [parent.pk, child.pk, reviewed.pk]

    result = retention.retention_enforce()

    assert (result.runs, result.more) == (2, False)
    assert not Run.objects.filter(pk__in=doomed).exists()
    assert not StepRun.objects.filter(run_id__in=doomed).exists()
    assert not ReviewTask.objects.filter(run_id__in=doomed).exists()
    assert set(Run.objects.filter(pk__in=[waiting.pk, recent.pk, elsewhere.pk]).values_list("pk", flat=True)) == {
        waiting.pk, recent.pk, elsewhere.pk}  # fmt: skip
    assert ReviewTask.objects.filter(run=waiting).exists()

    entry = AuditEntry.objects.filter(tenant=tenant, action="runs.purged").get()
    data = json.loads(entry.data)
    assert (entry.actor, data["runs"], data["child_runs"], data["keep_days"]) == (
        "system:retention",
        2,
        1,
        30,
    )
    # the parent's 3 steps, its child's 3, the approval run's 6 (trigger, draft, check, send, dropped, late)
    assert data["steps"] == 3 + 3 + 6
    assert not AuditEntry.objects.filter(tenant=other, action="runs.purged").exists()
    assert retention.retention_enforce().runs == 0  # nothing left to do: no second entry
    assert AuditEntry.objects.filter(tenant=tenant, action="runs.purged").count() == 1


def test_a_backlog_goes_in_bounded_batches():
    tenant = make_tenant()
    keep(tenant, 7)
    flow = small_flow(tenant)
    for _ in range(5):
        aged(wait_run(start(flow)), 8)
    rounds = []
    while True:
        result = retention.retention_enforce(batch=2)
        rounds.append(result.runs)
        if not result.more:
            break
    assert rounds == [2, 2, 1]
    assert not Run.objects.filter(tenant=tenant).exists()
    assert AuditEntry.objects.filter(tenant=tenant, action="runs.purged").count() == 3


def test_the_platform_default_applies_where_a_tenant_sets_none(settings):
    settings.STUDIO_RUNS_KEEP_DAYS = 10
    follows, own = make_tenant("Default"), make_tenant("Own")
    keep(own, 60)
    old_default = aged(wait_run(start(small_flow(follows))), 11)
    old_own = aged(wait_run(start(small_flow(own))), 11)
    assert retention.expired_count(follows) == 1 and retention.expired_count(own) == 0
    assert retention.retention_enforce().runs == 1
    assert not Run.objects.filter(pk=old_default.pk).exists()
    assert Run.objects.filter(pk=old_own.pk).exists()


def test_the_beat_job_runs_on_a_worker(settings):
    assert settings.CELERY_BEAT_SCHEDULE["runs-retention"]["task"] == "flows.runs_retention"
    tenant = make_tenant()
    keep(tenant, 1)
    old = aged(wait_run(start(small_flow(tenant))), 2)
    runs_retention_task.delay()
    wait_for(
        lambda: not Run.objects.filter(pk=old.pk).exists(), timeout=30, what="the worker removed the old run"
    )
    wait_for(lambda: AuditEntry.objects.filter(tenant=tenant, action="runs.purged").exists(), timeout=5,
             what="the purge audited")  # fmt: skip


def test_an_admin_sets_it_on_the_run_history_page():
    tenant = make_tenant("Pages")
    owner, builder = make_member(tenant, Role.OWNER), make_member(tenant, Role.BUILDER)
    aged(wait_run(start(small_flow(tenant))), 45)
    wait_run(start(small_flow(tenant, "fresh")))
    page = Client()
    assert page.login(username=owner.username, password=PASSWORD)

    html = page.get("/settings/runs/").content.decode()
    assert "Runs are kept until their flow or the tenant is deleted (the platform default)" in html
    assert '<dd data-fact="stored">2</dd>' in html

    saved = page.post("/settings/runs/", {"keep_days": "30"}, follow=True).content.decode()
    assert "Runs are kept for 30 days." in saved
    assert '<dd data-fact="expired">1</dd>' in saved and 'value="30"' in saved
    entry = AuditEntry.objects.filter(tenant=tenant, action="settings.changed").latest("id")
    assert entry.target == "settings:runs.keep_days"

    refused = page.post("/settings/runs/", {"keep_days": "0"}, follow=True).content.decode()
    assert "keep days: must be from 1 to 3650 days" in refused
    tenant.refresh_from_db()
    assert retention.keep_days_of(tenant) == 30

    cleared = page.post("/settings/runs/", {"keep_days": ""}, follow=True).content.decode()
    assert "Runs are kept until deleted." in cleared
    tenant.refresh_from_db()
    assert retention.keep_days_of(tenant) is None

    other = Client()
    assert other.login(username=builder.username, password=PASSWORD)
    assert other.post("/settings/runs/", {"keep_days": "1"}).status_code == 403
