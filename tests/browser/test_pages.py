"""The base pages in a real Chromium against a live server: log in, navigate, look."""

from __future__ import annotations

import pytest

from studio.tenants.roles import Role
from tests.conftest import ARTIFACTS
from tests.factories import PASSWORD, make_member, make_tenant

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, url: str, username: str) -> None:
    page.goto(url + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_builder_logs_in_and_walks_the_navigation(page, live_server_url):
    tenant = make_tenant("Acme Support")
    builder = make_member(tenant, Role.BUILDER, username="bea")
    log_in(page, live_server_url, builder.username)
    page.wait_for_url("**/flows/")
    assert page.get_by_role("heading", name="Flows", level=1).is_visible()
    assert page.get_by_text("No flows yet").is_visible()
    assert page.locator(".tenant-name").inner_text() == "Acme Support"
    page.screenshot(path=str(ARTIFACTS / "flows-empty.png"), full_page=True)

    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link", name="Settings").count() == 0  # builders do not manage the tenant
    nav.get_by_role("link", name="Inbox").click()
    page.wait_for_url("**/inbox/")
    assert page.get_by_role("heading", name="Nothing to review").is_visible()
    nav.get_by_role("link", name="Dashboard").click()
    page.wait_for_url("**/dashboard/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    assert page.console_errors == []


def test_an_owner_creates_an_api_key_and_switches_tenant(page, live_server_url):
    acme, globex = make_tenant("Acme"), make_tenant("Globex")
    owner = make_member(acme, Role.OWNER, username="olga")
    from studio.tenants.models import Membership

    Membership.objects.create(tenant=globex, user=owner, role=Role.VIEWER)
    log_in(page, live_server_url, owner.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Name").fill("helpdesk integration")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    assert key.startswith("afs_")
    page.screenshot(path=str(ARTIFACTS / "settings-api-keys.png"), full_page=True)
    assert page.get_by_role("cell", name="helpdesk integration").is_visible()

    with page.expect_navigation():
        page.get_by_label("Tenant").select_option(globex.slug)
    page.wait_for_url("**/flows/")
    assert page.locator(".role-badge").inner_text() == "viewer"
    assert page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").count() == 0
    page.set_viewport_size({"width": 420, "height": 800})
    page.screenshot(path=str(ARTIFACTS / "flows-narrow.png"), full_page=True)
    assert page.console_errors == []


def test_an_owner_browses_a_memory_namespace_tests_a_search_pins_and_deletes(page, live_server_url):
    from studio.memory import services
    from studio.memory.models import MemoryItem

    tenant = make_tenant("Acme Memory")
    owner = make_member(tenant, Role.OWNER, username="mona")
    policy = services.memory_add_one(
        tenant=tenant, namespace="support", content="Damaged parcels are refunded in full"
    )
    services.memory_add_one(tenant=tenant, namespace="support", content="Shipping to Norway takes a week",
                            subject="cust-ola")  # fmt: skip
    log_in(page, live_server_url, owner.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings").get_by_role("link", name="Memory").click()
    page.get_by_role("link", name="support").click()
    page.wait_for_url("**/settings/memory/support/")
    assert page.get_by_test_id("items").locator("tbody tr").count() == 2

    page.get_by_label("Query").fill("refund for a damaged parcel")
    page.get_by_role("button", name="Search").click()
    first = page.get_by_test_id("search-results").locator("tbody tr").first
    assert "Damaged parcels are refunded" in first.inner_text()

    row = page.locator(f'tr[data-item="{policy.pk}"]')
    row.get_by_role("button", name="Pin").click()
    assert page.get_by_text(f"Item {policy.pk} pinned").is_visible()
    assert page.locator(f'tr[data-item="{policy.pk}"] .pin').inner_text() == "pinned"
    assert page.get_by_label("Query").input_value() == "refund for a damaged parcel"  # the search stays
    page.screenshot(path=str(ARTIFACTS / "settings-memory-namespace.png"), full_page=True)

    other = page.get_by_test_id("items").locator("tbody tr", has_text="Norway")
    page.once("dialog", lambda dialog: dialog.accept())
    other.get_by_role("button", name="Delete").click()
    page.wait_for_selector("text=deleted")
    assert page.get_by_test_id("items").locator("tbody tr").count() == 1
    assert list(MemoryItem.objects.filter(tenant=tenant).values_list("pk", "pinned")) == [(policy.pk, True)]
    assert page.console_errors == []
