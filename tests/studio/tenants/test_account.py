"""Your account page: where you are a member, and changing your password (real sessions)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from studio.governance.models import AuditEntry
from studio.tenants.models import Membership, PasswordChangeRequired
from studio.tenants.roles import Role
from tests.factories import PASSWORD, make_member, make_tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_buckets")]

NEW = "a-new-and-long-passphrase-42"


def signed_in(user, address: str = "10.9.0.1") -> Client:
    client = Client(REMOTE_ADDR=address)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def change(client: Client, old: str, new: str, confirm: str | None = None):
    return client.post(
        "/account/", {"old_password": old, "new_password1": new, "new_password2": confirm or new}
    )


def test_the_page_lists_tenants_and_the_password_changes_ending_other_sessions():
    acme, globex = make_tenant("Acme"), make_tenant("Globex")
    ada = make_member(acme, Role.BUILDER)
    Membership.objects.create(tenant=globex, user=ada, role=Role.VIEWER)
    here, elsewhere = signed_in(ada), signed_in(ada, "10.9.0.2")
    page = here.get("/account/").content.decode()
    assert "Acme" in page and "Globex" in page and "Builder" in page and "Viewer" in page
    assert 'href="/account/"' in page  # the top bar's name leads here

    changed = change(here, PASSWORD, NEW)
    assert changed.status_code == 302
    assert "Password changed" in here.get("/account/").content.decode()  # this session goes on
    assert elsewhere.get("/account/").status_code == 302  # the other one is signed out
    assert Client().login(username=ada.username, password=NEW)
    assert not Client().login(username=ada.username, password=PASSWORD)


def test_bad_changes_say_why_and_change_nothing():
    ada = make_member(make_tenant("Acme"), Role.VIEWER)
    client = signed_in(ada)
    wrong = change(client, "not-my-password", NEW)
    assert wrong.status_code == 200 and "Your old password was entered incorrectly" in wrong.content.decode()
    mismatch = change(client, PASSWORD, NEW, NEW + "x")
    assert mismatch.status_code == 200 and "password fields didn" in mismatch.content.decode()
    weak = change(client, PASSWORD, "password")
    assert weak.status_code == 200 and "This password is too common" in weak.content.decode()
    assert Client().login(username=ada.username, password=PASSWORD)  # unchanged


def test_guessing_the_current_password_counts_as_failed_sign_ins(settings):
    settings.STUDIO_SIGNIN_FAILURES = {"per_account": 2, "per_address": 0}
    ada = make_member(make_tenant("Acme"), Role.VIEWER)
    client = signed_in(ada)
    for _ in range(2):
        assert "entered incorrectly" in change(client, "guess", NEW).content.decode()
    held = change(client, PASSWORD, NEW)  # even the right one: nothing is checked now
    assert held.status_code == 429 and "Too many failed sign-ins" in held.content.decode()
    assert Client().login(username=ada.username, password=PASSWORD)
    assert (
        Client(REMOTE_ADDR="10.9.0.3")
        .post("/login/", {"username": ada.username, "password": PASSWORD})
        .status_code
        == 429
    )


def test_an_account_made_with_a_one_time_password_must_choose_its_own_first():
    tenant = make_tenant("Acme")
    owner = signed_in(make_member(tenant, Role.OWNER))
    made = owner.post("/settings/members/", {"action": "add", "username": "newbie", "role": "builder"})
    one_time = made.content.decode().split('<code id="new-password">')[1].split("</code>")[0]

    newbie = Client(REMOTE_ADDR="10.9.0.4")
    signed = newbie.post("/login/", {"username": "newbie", "password": one_time})
    assert signed.status_code == 302 and signed["Location"] == "/account/"
    held = newbie.get("/flows/")
    assert held.status_code == 302 and held["Location"] == "/account/"
    api = newbie.get("/api/v1/me/")
    assert api.status_code == 403 and api.json()["error"]["code"] == "password_change_required"
    assert "Choose your own password before you go on." in newbie.get("/account/").content.decode()

    assert change(newbie, one_time, NEW).status_code == 302
    assert newbie.get("/flows/").status_code == 200 and newbie.get("/api/v1/me/").status_code == 200
    again = Client(REMOTE_ADDR="10.9.0.5")  # and from then on, signing in goes where it asks
    assert again.post("/login/", {"username": "newbie", "password": NEW})["Location"] == "/flows/"


def test_a_one_time_password_expires_and_the_tenant_that_made_the_account_issues_another(settings):
    settings.ONE_TIME_PASSWORD_DAYS = 7
    tenant = make_tenant("Acme")
    owner = signed_in(make_member(tenant, Role.OWNER))
    made = owner.post("/settings/members/", {"action": "add", "username": "late", "role": "viewer"})
    first = made.content.decode().split('<code id="new-password">')[1].split("</code>")[0]
    assert "works for 7 days" in made.content.decode()
    PasswordChangeRequired.objects.filter(user__username="late").update(
        issued_at=timezone.now() - timedelta(days=8)
    )

    late = Client(REMOTE_ADDR="10.9.0.6")
    refused = late.post("/login/", {"username": "late", "password": first})
    assert refused.status_code == 403 and "This one-time password has expired" in refused.content.decode()
    assert "_auth_user_id" not in late.session

    membership = Membership.objects.get(user__username="late")
    page = owner.get("/settings/members/").content.decode()
    assert "has not chosen a password yet" in page
    again = owner.post("/settings/members/", {"action": "reissue", "membership": membership.pk})
    second = again.content.decode().split('<code id="new-password">')[1].split("</code>")[0]
    assert second != first and "A new one-time password for late" in again.content.decode()
    assert (
        late.post("/login/", {"username": "late", "password": first}).status_code == 200
    )  # the old one: wrong
    assert late.post("/login/", {"username": "late", "password": second})["Location"] == "/account/"
    assert AuditEntry.objects.filter(tenant=tenant, action="member.password_reissued").count() == 1

    # Only for accounts this tenant made and still on a one-time password.
    chosen = make_member(tenant, Role.VIEWER)
    refused = owner.post(
        "/settings/members/",
        {"action": "reissue", "membership": Membership.objects.get(user=chosen).pk},
        follow=True,
    )
    assert "only an account this tenant made" in refused.content.decode()
    other = signed_in(make_member(make_tenant("Globex"), Role.OWNER), "10.9.0.7")
    assert (
        other.post("/settings/members/", {"action": "reissue", "membership": membership.pk}).status_code
        == 404
    )
