"""Login, the tenant switcher and the settings pages, through Django's test client."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from studio.governance.models import AuditEntry
from studio.tenants.models import ApiKey, Membership, Secret
from studio.tenants.roles import Role
from tests.factories import PASSWORD, make_member, make_tenant

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_pages_need_a_login():
    response = Client().get("/flows/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_login_takes_a_builder_to_the_flows_page(trio):
    client = Client()
    response = client.post("/login/", {"username": trio.teammate.username, "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/flows/"
    html = response.content.decode()
    assert "<h1>Flows</h1>" in html
    assert "Acme" in html  # the current tenant, in the switcher


def test_a_wrong_password_says_so(trio):
    response = Client().post("/login/", {"username": trio.teammate.username, "password": "nope"})
    assert response.status_code == 200
    assert "do not match" in response.content.decode()


def test_settings_are_for_owners_and_admins(trio):
    assert logged_in(trio.owner).get("/settings/members/").status_code == 200
    response = logged_in(trio.teammate).get("/settings/members/")
    assert response.status_code == 403
    assert "does not allow" in response.content.decode()


def test_the_navigation_hides_settings_from_builders(trio):
    assert 'href="/settings/"' in logged_in(trio.owner).get("/flows/").content.decode()
    assert 'href="/settings/"' not in logged_in(trio.teammate).get("/flows/").content.decode()


def test_a_person_in_two_tenants_switches_between_them(trio):
    Membership.objects.create(tenant=trio.other_tenant, user=trio.teammate, role=Role.VIEWER)
    client = logged_in(trio.teammate)
    assert client.get("/api/v1/me/").json()["tenant"]["slug"] == trio.tenant.slug
    response = client.post("/tenants/switch/", {"tenant": trio.other_tenant.slug, "next": "/flows/42/edit/"})
    assert response.status_code == 302 and response["Location"] == "/flows/"
    me = client.get("/api/v1/me/").json()
    assert (me["tenant"]["slug"], me["role"]) == (trio.other_tenant.slug, "viewer")


def test_switching_to_a_tenant_you_are_not_in_is_a_404(trio):
    client = logged_in(trio.teammate)
    assert client.post("/tenants/switch/", {"tenant": trio.other_tenant.slug}).status_code == 404
    assert client.get("/api/v1/me/").json()["tenant"]["slug"] == trio.tenant.slug


def test_an_owner_creates_a_key_and_sees_it_once(trio):
    client = logged_in(trio.owner)
    response = client.post("/settings/api-keys/", {"action": "create", "name": "ci", "role": "builder"})
    html = response.content.decode()
    key = ApiKey.objects.get(tenant=trio.tenant)
    assert key.prefix in html and 'id="new-key"' in html
    assert 'id="new-key"' not in client.get("/settings/api-keys/").content.decode()


def test_a_secret_saved_in_settings_is_never_rendered(trio):
    client = logged_in(trio.owner)
    client.post("/settings/secrets/", {"action": "set", "name": "openai_key", "value": "sk-very-secret"})
    assert Secret.objects.filter(tenant=trio.tenant, name="openai_key").exists()
    html = client.get("/settings/secrets/").content.decode()
    assert "openai_key" in html and "sk-very-secret" not in html


def test_another_tenants_secret_cannot_be_deleted_from_settings(trio):
    theirs = Secret.objects.create(tenant=trio.other_tenant, name="theirs", ciphertext="x")
    response = logged_in(trio.owner).post("/settings/secrets/", {"action": "delete", "secret": theirs.id})
    assert response.status_code == 404
    assert Secret.objects.filter(pk=theirs.pk).exists()


def test_an_admin_cannot_make_an_owner(trio):
    admin = make_member(trio.tenant, Role.ADMIN)
    viewer = make_member(trio.tenant, Role.VIEWER)
    membership = Membership.objects.get(user=viewer)
    response = logged_in(admin).post(
        "/settings/members/", {"action": "role", "membership": membership.id, "role": "owner"}, follow=True
    )
    assert "only an owner" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.VIEWER


def test_the_last_owner_cannot_be_removed(trio):
    membership = Membership.objects.get(user=trio.owner)
    response = logged_in(trio.owner).post(
        "/settings/members/", {"action": "remove", "membership": membership.id}, follow=True
    )
    assert "at least one owner" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_a_user_without_tenant_gets_an_honest_page():
    from tests.factories import make_user

    make_tenant()
    user = make_user()
    response = logged_in(user).get("/flows/")
    assert response.status_code == 403
    assert "not a member of any tenant" in response.content.decode()


def test_adding_a_new_name_makes_an_account_with_a_one_time_password(trio):
    owner = logged_in(trio.owner)
    made = owner.post("/settings/members/", {"action": "add", "username": "grace.h", "role": "reviewer"})
    assert made.status_code == 200  # shown in this answer, not after a redirect
    html = made.content.decode()
    password = html.split('<code id="new-password">')[1].split("</code>")[0]
    assert len(password) >= 16 and "grace.h has an account now" in html
    assert Membership.objects.get(tenant=trio.tenant, user__username="grace.h").role == Role.REVIEWER
    assert Client().login(username="grace.h", password=password)
    assert password not in owner.get("/settings/members/").content.decode()  # never again
    audited = AuditEntry.objects.filter(
        tenant=trio.tenant, action__in=["member.account_created", "member.role_set"]
    )
    assert sorted(audited.values_list("action", flat=True)) == ["member.account_created", "member.role_set"]
    assert all(password not in str(entry.data) for entry in audited)

    existing = make_member(make_tenant("Elsewhere"), Role.OWNER)  # an account already: added, no password
    added = owner.post(
        "/settings/members/", {"action": "add", "username": existing.username, "role": "viewer"}, follow=True
    )
    assert (
        f"{existing.username} is now a viewer." in added.content.decode()
        and "new-password" not in added.content.decode()
    )
    assert Client().login(username=existing.username, password=PASSWORD)  # their password untouched

    bad = owner.post(
        "/settings/members/", {"action": "add", "username": "not a name!", "role": "viewer"}, follow=True
    )
    assert "username: Enter a valid username" in bad.content.decode()
    unknown_role = owner.post(
        "/settings/members/", {"action": "add", "username": "newbie", "role": "boss"}, follow=True
    )
    assert "role: unknown role" in unknown_role.content.decode()

    assert (
        not get_user_model().objects.filter(username__in=["not a name!", "newbie"]).exists()
    )  # nothing made
