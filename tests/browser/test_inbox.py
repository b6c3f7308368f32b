"""The inbox in Chromium with two reviewers: items appear live, claims show live, decisions resume runs."""

from __future__ import annotations

import json
import urllib.request

import pytest

from flows.models import RunStatus
from studio.tenants.roles import Role
from tests.browser.test_pages import log_in
from tests.conftest import ARTIFACTS
from tests.factories import make_api_key, make_member, make_tenant
from tests.flows.helpers import wait_run
from tests.studio.inbox.helpers import approval_flow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def start_run_over_http(url: str, key: str, flow_id: int, inputs: dict) -> int:
    request = urllib.request.Request(
        f"{url}/api/v1/flows/{flow_id}/runs/", data=json.dumps({"inputs": inputs}).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["id"]


def test_two_reviewers_see_items_and_claims_live_and_an_edit_resumes_the_run(browser, page, live_server_url):
    tenant = make_tenant("Acme Support")
    make_member(tenant, Role.REVIEWER, username="rita")
    make_member(tenant, Role.REVIEWER, username="remy")
    flow = approval_flow(tenant, sla_s=3600)
    key = make_api_key(tenant, Role.BUILDER)

    log_in(page, live_server_url, "rita")
    page.goto(live_server_url + "/inbox/")
    other_context = browser.new_context(viewport={"width": 1280, "height": 800})
    other = other_context.new_page()
    other_errors: list[str] = []
    other.on("console", lambda msg: other_errors.append(msg.text) if msg.type == "error" else None)
    log_in(other, live_server_url, "remy")
    other.goto(live_server_url + "/inbox/")
    for p in (page, other):
        p.get_by_role("heading", name="Nothing to review").wait_for()
        p.locator("#inbox-live[data-state=live]").wait_for(timeout=10_000)

    from flows.models import Run

    run = Run.objects.get(
        pk=start_run_over_http(live_server_url, key, flow.pk, {"amount": 40, "customer": "Ann"})
    )
    # Both pages get the item without a reload.
    for p in (page, other):
        p.locator(".inbox-item", has_text="check").wait_for(timeout=15_000)
        p.locator("#inbox-unread [data-count]", has_text="1").wait_for()

    page.locator(".inbox-item", has_text="check").click()
    page.get_by_role("button", name="Claim (c)").click()
    page.locator(".inbox-item .claim", has_text="claimed by you").wait_for()
    # The second reviewer sees the claim live, and cannot decide over it.
    other.locator(".inbox-item .claim", has_text="claimed by rita").wait_for(timeout=10_000)
    other.keyboard.press("j")  # keyboard navigation selects the first item
    other.locator(".inbox-item.selected", has_text="check").wait_for()
    other.get_by_role("button", name="Approve (a)").wait_for()
    assert other.get_by_role("button", name="Approve (a)").is_disabled()
    other.keyboard.press("a")  # refused in the page: it is rita's
    other.get_by_role("alert").get_by_text("Claimed by rita").wait_for()

    page.keyboard.press("e")
    reply = page.get_by_label("reply")
    reply.fill("Refunded 40 EUR, sorry.")
    diff = page.get_by_role("table", name="Changes against the proposal")
    diff.get_by_text("Refunded 40 EUR, sorry.").wait_for()
    assert diff.get_by_text("We will refund you.").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "inbox-edit.png"), full_page=True)
    other.screenshot(path=str(ARTIFACTS / "inbox-claimed-by-other.png"), full_page=True)
    page.get_by_role("button", name="Approve with changes").click()
    page.locator(".detail-badges .status-badge", has_text="edited").wait_for()
    page.screenshot(path=str(ARTIFACTS / "inbox-decided.png"), full_page=True)

    run = wait_run(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"sent": "Refunded 40 EUR, sorry.", "amount": 40}
    # The second reviewer, still looking at it, sees the outcome live; the open queue is empty after.
    other.locator(".inbox-item .status-badge", has_text="edited").wait_for(timeout=10_000)
    assert other.get_by_role("region", name="Decision").get_by_text("edited by rita").is_visible()
    other.reload()
    other.get_by_role("heading", name="Nothing to review").wait_for()
    assert other.locator("#inbox-unread").is_hidden()
    assert page.console_errors == [] and other_errors == []
    other_context.close()
