"""Writes for tenants, members, secrets and API keys (keyword-only, atomic)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from studio.governance.audit import audit_allow_erase, audit_append, user_label
from studio.tenants import key_cache
from studio.tenants.crypto import encrypt
from studio.tenants.models import ApiKey, Membership, MembershipInvite, PasswordChangeRequired, Secret, Tenant
from studio.tenants.roles import Role
from studio.tenants.selectors import api_key_hash

API_KEY_PREFIX = "afs_"
SECRET_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$"
MAX_SECRET_BYTES = 64 * 1024
LAST_USED_RESOLUTION = timedelta(minutes=1)


def tenant_create(*, name: str, slug: str | None = None, owner: AbstractBaseUser | None = None) -> Tenant:
    slug = slug or slugify(name)
    if not slug:
        raise ValidationError({"slug": "a tenant needs a slug of letters, digits or dashes"})
    if Tenant.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": f"a tenant with slug {slug!r} already exists"})
    with transaction.atomic():
        tenant = Tenant.objects.create(name=name, slug=slug)
        if owner is not None:
            Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    return tenant


@transaction.atomic
def tenants_delete(*, tenant_ids: list[int]) -> None:
    """Delete tenants with everything they own, their audit chains included."""
    audit_allow_erase(tenant_ids=tenant_ids)
    Tenant.objects.filter(pk__in=tenant_ids).delete()


def tenant_settings_set(*, tenant: Tenant, path: tuple[str, ...], value, actor: str = "system") -> Tenant:
    """Set one part of the tenant's settings (``("budget",)``, ``("memory", "embedder")``) in one
    statement: pages saving different parts at the same moment never undo each other's change.
    ``tenant.settings`` is refreshed from what was written."""
    if not 1 <= len(path) <= 2:
        raise ValueError("a settings path has one or two keys")
    table = connection.ops.quote_name(Tenant._meta.db_table)
    if len(path) == 1:
        merged, params = "coalesce(settings, '{}'::jsonb) || jsonb_build_object(%s, %s::jsonb)", [path[0]]
    else:  # the section is created when missing; its other keys are kept
        merged = (
            "coalesce(settings, '{}'::jsonb) || jsonb_build_object(%s, "
            "coalesce(settings -> %s, '{}'::jsonb) || jsonb_build_object(%s, %s::jsonb))"
        )
        params = [path[0], path[0], path[1]]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET settings = {merged} WHERE id = %s RETURNING settings",
            [*params, json.dumps(value), tenant.pk],
        )
        (settings,) = cursor.fetchone()
        key_cache.changed()  # API calls carry the tenant, its settings included
        audit_append(tenant_id=tenant.pk, actor=actor, action="settings.changed", target=f"settings:{'.'.join(path)}",
                     data={"value": value})  # fmt: skip
    tenant.settings = settings if isinstance(settings, dict) else json.loads(settings)
    return tenant


@transaction.atomic
def membership_set(*, tenant: Tenant, user: AbstractBaseUser, role: str, actor: str = "system") -> Membership:
    _check_role(role)
    before = Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True).first()
    membership, _ = Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
    if before != role:
        audit_append(tenant_id=tenant.pk, actor=actor, action="member.role_set", target=f"user:{user.pk}",
                     data={"user": user.get_username(), "role": role, "before": before})  # fmt: skip
    return membership


@dataclass(frozen=True)
class Added:
    """What adding a member by name did: made a membership (for an account made here, with its
    one-time password, shown once and never stored), or invited an account that exists."""

    membership: Membership | None = None
    one_time_password: str | None = None
    invite: MembershipInvite | None = None


def _new_password(user: AbstractBaseUser) -> str:
    """A random one-time password set on ``user`` (not saved yet)."""
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    return password


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise ValidationError({"role": f"unknown role {role!r}; one of {', '.join(Role.values)}"})


@transaction.atomic
def member_add(*, tenant: Tenant, username: str, role: str, actor: str = "system") -> Added:
    """Add ``username`` with ``role``. A name with no account: the account is made, with a random
    password that its owner must change at their first sign-in (``PasswordChangeRequired``), and
    it is a member at once. An account that exists is invited: it joins when its owner accepts
    (``invite_answer``), so nobody is put in a tenant without saying yes. A member already has
    their role changed."""
    _check_role(role)
    User = get_user_model()
    username = username.strip()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            raise ValidationError({"username": exc.message_dict.get("username", exc.messages)}) from None
        password = _new_password(user)
        user.save()
        PasswordChangeRequired.objects.create(user=user, tenant=tenant, issued_at=timezone.now())
        audit_append(tenant_id=tenant.pk, actor=actor, action="member.account_created", target=f"user:{user.pk}",
                     data={"user": username})  # fmt: skip
        return Added(membership=membership_set(tenant=tenant, user=user, role=role, actor=actor),
                     one_time_password=password)  # fmt: skip
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        return Added(membership=membership_set(tenant=tenant, user=user, role=role, actor=actor))
    invite, _ = MembershipInvite.objects.update_or_create(
        tenant=tenant, user=user, defaults={"role": role, "invited_by": actor}
    )
    audit_append(tenant_id=tenant.pk, actor=actor, action="member.invited", target=f"user:{user.pk}",
                 data={"user": username, "role": role})  # fmt: skip
    return Added(invite=invite)


def one_time_password_expired(flag: PasswordChangeRequired) -> bool:
    return timezone.now() - flag.issued_at > timedelta(days=settings.ONE_TIME_PASSWORD_DAYS)


@transaction.atomic
def one_time_password_reissue(*, tenant: Tenant, membership: Membership, actor: str) -> str:
    """A new one-time password for a member whose account this tenant made and who has not
    chosen their own yet (shown once, audited without it); refused for anyone else."""
    flag = (
        PasswordChangeRequired.objects.select_for_update().filter(user=membership.user, tenant=tenant).first()
    )
    if flag is None:
        raise ValidationError(
            {"membership": "only an account this tenant made, still on its one-time password"}
        )
    password = _new_password(membership.user)
    membership.user.save(update_fields=["password"])
    flag.issued_at = timezone.now()
    flag.save(update_fields=["issued_at"])
    audit_append(tenant_id=tenant.pk, actor=actor, action="member.password_reissued",
                 target=f"user:{membership.user_id}", data={"user": membership.user.get_username()})  # fmt: skip
    return password


def own_password_chosen(*, user: AbstractBaseUser) -> None:
    """The account's owner chose their password: its one-time password, if any, is behind it."""
    PasswordChangeRequired.objects.filter(user=user).delete()


@transaction.atomic
def invite_answer(*, invite: MembershipInvite, accept: bool) -> Membership | None:
    """The invited person's answer: accepting makes them a member with the invite's role."""
    user = invite.user
    invite.delete()
    if not accept:
        audit_append(tenant_id=invite.tenant_id, actor=user_label(user), action="member.invite_declined",
                     target=f"user:{user.pk}", data={"user": user.get_username()})  # fmt: skip
        return None
    return membership_set(tenant=invite.tenant, user=user, role=invite.role, actor=user_label(user))


def invite_cancel(*, invite: MembershipInvite, actor: str) -> None:
    invite.delete()
    audit_append(tenant_id=invite.tenant_id, actor=actor, action="member.invite_cancelled",
                 target=f"user:{invite.user_id}", data={"user": invite.user.get_username()})  # fmt: skip


@transaction.atomic
def membership_remove(*, membership: Membership, actor: str = "system") -> None:
    """Remove a member, refusing to leave a tenant without an owner."""
    others = Membership.objects.select_for_update().filter(tenant=membership.tenant, role=Role.OWNER)
    if membership.role == Role.OWNER and others.exclude(pk=membership.pk).count() == 0:
        raise ValidationError({"role": "a tenant must keep at least one owner"})
    membership.delete()
    audit_append(tenant_id=membership.tenant_id, actor=actor, action="member.removed",
                 target=f"user:{membership.user_id}",
                 data={"user": membership.user.get_username(), "role": membership.role})  # fmt: skip


@transaction.atomic
def secret_set(
    *,
    tenant: Tenant,
    name: str,
    value: str,
    description: str = "",
    user: AbstractBaseUser | None = None,
    actor: str = "",
) -> Secret:
    """Create or replace a secret; the value is encrypted before it is stored."""
    import re

    if not re.match(SECRET_NAME_PATTERN, name or ""):
        raise ValidationError({"name": "a secret name starts with a letter and uses letters, digits, _ . -"})
    if not value:
        raise ValidationError({"value": "a secret needs a value"})
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise ValidationError({"value": f"a secret is at most {MAX_SECRET_BYTES // 1024} KB"})
    secret, created = Secret.objects.get_or_create(
        tenant=tenant,
        name=name,
        defaults={"ciphertext": encrypt(value), "description": description, "created_by": user},
    )
    if not created:
        secret.ciphertext = encrypt(value)
        secret.description = description or secret.description
        secret.save(update_fields=["ciphertext", "description", "updated_at"])
    audit_append(tenant_id=tenant.pk, actor=actor or user_label(user), action="secret.set", target=f"secret:{name}",
                 data={"name": name, "replaced": not created})  # the value never  # fmt: skip
    return secret


@transaction.atomic
def secret_delete(*, secret: Secret, actor: str = "system") -> None:
    secret.delete()
    audit_append(tenant_id=secret.tenant_id, actor=actor, action="secret.deleted", target=f"secret:{secret.name}",
                 data={"name": secret.name})  # fmt: skip


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    raw_key: str  # shown once to whoever created it, never stored


@transaction.atomic
def api_key_create(
    *, tenant: Tenant, name: str, role: str, user: AbstractBaseUser | None = None, actor: str = ""
) -> IssuedKey:
    if role not in Role.values:
        raise ValidationError({"role": f"unknown role {role!r}; one of {', '.join(Role.values)}"})
    if not name.strip():
        raise ValidationError({"name": "an API key needs a name"})
    raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        tenant=tenant,
        name=name.strip(),
        prefix=raw_key[: len(API_KEY_PREFIX) + 6],
        key_hash=api_key_hash(raw_key),
        role=role,
        created_by=user,
    )
    details = {"name": api_key.name, "prefix": api_key.prefix, "role": role}
    audit_append(tenant_id=tenant.pk, actor=actor or user_label(user), action="api_key.created",
                 target=f"api_key:{api_key.pk}", data=details)  # fmt: skip
    return IssuedKey(api_key=api_key, raw_key=raw_key)


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: str = "system") -> None:
    if ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        key_cache.changed()
        audit_append(tenant_id=api_key.tenant_id, actor=actor, action="api_key.revoked", target=f"api_key:{api_key.pk}",
                     data={"name": api_key.name, "prefix": api_key.prefix})  # fmt: skip


def tenant_settings_update(*, tenant: Tenant, path: tuple[str, ...], change, actor: str = "system"):
    """Read, change and write one part of the tenant's settings under the tenant's row lock, so
    two admins adding at once both keep their addition: ``change(settings)`` gets the settings
    as they are now and returns the new value for ``path`` (or raises, and nothing changes)."""
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().only("settings").get(pk=tenant.pk)
        value = change(locked.settings or {})
        tenant_settings_set(tenant=tenant, path=path, value=value, actor=actor)
    return value


def api_key_touch(*, api_key: ApiKey) -> bool:
    """Record use, at most once a minute per key, so busy keys do not write on every call: no
    query at all while the loaded ``last_used_at`` is recent, and a compare-and-set UPDATE
    otherwise, so that processes racing past a minute write once between them. True when it
    recorded this use."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return False
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    ApiKey.objects.filter(stale, pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
    return True


def demo_seed(*, tenant_slug: str = "demo") -> dict[str, str] | None:
    """Create the demo tenant with users owner, builder and reviewer; None if it exists.

    Returns the generated passwords (username → password) so the caller can show them once
    and keep them in the data dir.
    """
    if Tenant.objects.filter(slug=tenant_slug).exists():
        return None
    User = get_user_model()
    logins: dict[str, str] = {}
    with transaction.atomic():
        tenant = Tenant.objects.create(name="Demo", slug=tenant_slug)
        for role in (Role.OWNER, Role.BUILDER, Role.REVIEWER):
            password = secrets.token_urlsafe(12)
            user = User.objects.filter(username=role.value).first()
            if user is None:
                user = User.objects.create_user(username=role.value, password=password)
            else:
                user.set_password(password)
                user.save(update_fields=["password"])
            Membership.objects.update_or_create(tenant=tenant, user=user, defaults={"role": role})
            logins[role.value] = password
    return logins
