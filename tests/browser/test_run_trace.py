"""A run's trace page in Chromium: it follows the run live over ws/runs/<id>/ and cancels it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from flows.models import RunStatus
from studio.inbox import services as inbox_services
from studio.tenants.roles import Role
from studio.tenants.selectors import Actor
from tests.browser.test_pages import log_in
from tests.conftest import ARTIFACTS
from tests.factories import make_member, make_tenant
from tests.flows.helpers import start, wait_run
from tests.studio.inbox.helpers import approval_flow, wait_review

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_trace_follows_the_run_live_and_cancels_it(page, live_server_url, celery_worker):
    tenant = make_tenant("Acme Support")
    builder = make_member(tenant, Role.BUILDER, username="bea")
    reviewer = make_member(tenant, Role.REVIEWER, username="rita")
    flow = approval_flow(tenant, sla_s=3600)
    run = start(flow, {"amount": 40, "customer": "Ann"})
    review = wait_review(run)

    log_in(page, live_server_url, builder.username)
    page.wait_for_url("**/flows/")
    page.goto(f"{live_server_url}/runs/{run.pk}/")
    expect(page.locator("#run-live-state")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(page.locator("#run-state")).to_have_attribute("data-run-status", "waiting")
    page.locator('details[data-step="draft"] summary').click()  # stays open across refreshes
    inbox_services.review_decide(review=review, actor=Actor(tenant=tenant, role=Role.REVIEWER, user=reviewer),
                                 decision="approve")  # fmt: skip
    expect(page.locator("#run-state")).to_have_attribute("data-run-status", "succeeded", timeout=15_000)
    expect(page.locator('details[data-step="check"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator('details[data-step="draft"]')).to_have_attribute("open", "")
    expect(page.locator("#run-live-state")).to_have_text("Finished")
    page.screenshot(path=str(ARTIFACTS / "run-trace.png"), full_page=True)

    waiting = start(flow, {"amount": 5})
    wait_review(waiting)
    page.goto(f"{live_server_url}/runs/{waiting.pk}/")
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-state")).to_have_attribute("data-run-status", "cancelled")
    assert wait_run(waiting).status == RunStatus.CANCELLED
    assert page.console_errors == []
