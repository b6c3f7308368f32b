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


def test_an_account_that_exists_is_invited_and_joins_only_when_it_accepts(trio):
    owner = logged_in(trio.owner)
    elsewhere = make_tenant("Elsewhere")
    ann, bob = make_member(elsewhere, Role.OWNER), make_member(elsewhere, Role.VIEWER)
    for person in (ann, bob):
        invited = owner.post(
            "/settings/members/",
            {"action": "add", "username": person.username, "role": "builder"},
            follow=True,
        ).content.decode()
        assert f"{person.username} is invited as builder" in invited and "new-password" not in invited
    assert not Membership.objects.filter(
        tenant=trio.tenant, user__in=[ann, bob]
    ).exists()  # nothing granted yet
    assert f'data-invite="{ann.username}"' in owner.get("/settings/members/").content.decode()

    ann_client, bob_client = logged_in(ann), logged_in(bob)
    assert 'title="Invitations waiting for your answer">1<' in ann_client.get("/flows/").content.decode()
    page = ann_client.get("/account/").content.decode()
    assert (
        f'data-invite="{trio.tenant.slug}"' in page and "asks you to join as <strong>builder</strong>" in page
    )
    mine = ann.membership_invites.get()
    assert (
        bob_client.post("/account/", {"action": "accept", "invite": mine.pk}).status_code == 404
    )  # not bob's
    joined = ann_client.post(
        "/account/", {"action": "accept", "invite": mine.pk}, follow=True
    ).content.decode()
    assert f"You are a builder of {trio.tenant.name} now." in joined
    assert Membership.objects.get(tenant=trio.tenant, user=ann).role == Role.BUILDER
    assert ann_client.get("/flows/").status_code == 200  # and it is their current tenant
    declined = bob_client.post("/account/", {"action": "decline", "invite": bob.membership_invites.get().pk},
                               follow=True).content.decode()  # fmt: skip
    assert f"You declined to join {trio.tenant.name}." in declined
    assert not Membership.objects.filter(tenant=trio.tenant, user=bob).exists()
    actions = AuditEntry.objects.filter(tenant=trio.tenant, action__startswith="member.").values_list(
        "action", flat=True
    )
    assert sorted(actions) == [
        "member.invite_declined",
        "member.invited",
        "member.invited",
        "member.role_set",
    ]

    again = owner.post("/settings/members/", {"action": "add", "username": bob.username, "role": "viewer"})
    assert again.status_code == 302
    invite = bob.membership_invites.get()
    owner.post("/settings/members/", {"action": "cancel_invite", "invite": invite.pk})
    assert not bob.membership_invites.exists()
    other_admin = logged_in(make_member(make_tenant("Initech"), Role.OWNER))
    assert (
        other_admin.post("/settings/members/", {"action": "cancel_invite", "invite": 999999}).status_code
        == 404
    )
