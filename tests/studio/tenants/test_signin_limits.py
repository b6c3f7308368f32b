"""Failed sign-ins are limited per account and per client address (``ratelimit.signin_refusal``),
on the real Redis: past the limit the sign-in page answers 429 without checking the password."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.factories import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_buckets")]

LIMITS = {"per_account": 3, "per_address": 5}


def sign_in(username: str, password: str, address: str = "10.0.0.1", **headers):
    return Client(REMOTE_ADDR=address, **headers).post(
        "/login/", {"username": username, "password": password}
    )


@override_settings(STUDIO_SIGNIN_FAILURES=LIMITS)
def test_an_account_is_held_after_its_failures_whatever_the_password():
    ada, bob = make_user(), make_user()
    for _ in range(3):
        wrong = sign_in(ada.username, "not-it")
        assert wrong.status_code == 200 and "do not match" in wrong.content.decode()
    held = sign_in(ada.username.upper(), PASSWORD)  # the right password, the name in other case
    assert held.status_code == 429 and "_auth_user_id" not in held.client.session
    page = held.content.decode()
    assert "Too many failed sign-ins" in page and "do not match" not in page
    wait = int(held["Retry-After"])
    assert 60 < wait <= 300  # a failure comes back every 15 min / 3 = 300 s
    assert f"Try again in {wait // 60} min {wait % 60} s" in page
    assert sign_in(bob.username, PASSWORD).status_code == 302  # another account is not held


@override_settings(STUDIO_SIGNIN_FAILURES=LIMITS)
def test_an_address_is_held_after_failures_across_accounts_and_successes_count_nothing():
    ada = make_user()
    for _ in range(10):  # people who sign in often are never held up
        assert sign_in(ada.username, PASSWORD, "10.0.0.2").status_code == 302
    for n in range(5):  # password spraying: one try per account
        assert sign_in(f"guess{n}", "123456", "10.0.0.2").status_code == 200
    assert sign_in(ada.username, PASSWORD, "10.0.0.2").status_code == 429
    assert sign_in(ada.username, PASSWORD, "10.0.0.3").status_code == 302  # from elsewhere: fine


@override_settings(STUDIO_SIGNIN_FAILURES=LIMITS, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_the_proxy_the_address_is_the_last_forwarded_hop():
    for n in range(5):
        forged_first_hop = f"192.0.2.{n}, 198.51.100.7"  # a client cannot choose the hop the proxy adds
        sign_in(f"guess{n}", "x", "127.0.0.1", HTTP_X_FORWARDED_FOR=forged_first_hop)
    assert (
        sign_in("someone", "x", "127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9, 198.51.100.7").status_code
        == 429
    )
    assert sign_in("someone", "x", "127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 200


@override_settings(STUDIO_SIGNIN_FAILURES={"per_account": 0, "per_address": 0})
def test_limits_at_zero_are_off():
    for _ in range(8):
        assert sign_in("nobody", "x").status_code == 200
