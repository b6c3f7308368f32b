"""Factories: plain functions that make valid rows with the services the product uses."""

from __future__ import annotations

import itertools

from django.contrib.auth import get_user_model

from studio.tenants import services
from studio.tenants.models import Membership, Tenant

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


def make_user(username: str | None = None, *, password: str = PASSWORD):
    return get_user_model().objects.create_user(username=username or f"user{next(_seq)}", password=password)


def make_tenant(name: str | None = None) -> Tenant:
    n = next(_seq)
    return services.tenant_create(name=name or f"Tenant {n}", slug=f"tenant-{n}")


# The tests' HTTP receivers live on loopback, which tenants may not reach unless they allow it.
LOOPBACK_HTTP = {"allowed_hosts": ["127.0.0.1"], "allow_private": True}


def make_loopback_tenant(name: str | None = None, **settings) -> Tenant:
    """A tenant whose flows may call the tests' receivers on 127.0.0.1 (off by default)."""
    tenant = make_tenant(name)
    tenant.settings = {"http": LOOPBACK_HTTP, **settings}
    tenant.save()
    return tenant


def make_member(tenant: Tenant, role: str, username: str | None = None):
    user = make_user(username)
    Membership.objects.create(tenant=tenant, user=user, role=role)
    return user


def make_api_key(tenant: Tenant, role: str) -> str:
    return services.api_key_create(tenant=tenant, name=f"key {next(_seq)}", role=role).raw_key
