from __future__ import annotations

from django.conf import settings
from django.db import models

from studio.tenants.roles import Role


class TenantOwnedQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant) -> TenantOwnedQuerySet:
        return self.filter(tenant=tenant)


class Tenant(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    # Free-form tenant settings, readable in templates as {{ tenant.settings.x }}.
    settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user")]
        # The tenant switcher lists a user's memberships: (user) via the FK index.
        ordering = ["tenant__name"]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} as {self.role}"


class Secret(models.Model):
    """A named credential of a tenant, encrypted at rest; its value never leaves the server."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=100)
    ciphertext = models.TextField()
    description = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        # Also serves lookups by name from node configs: (tenant, name).
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="secret_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name}"


class ApiKey(models.Model):
    """A tenant API key. Only its SHA-256 is stored; the key itself is shown once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)  # shown in lists so people can tell keys apart
    key_hash = models.CharField(max_length=64, unique=True)  # serves every authenticated API call
    role = models.CharField(max_length=16, choices=Role.choices)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.tenant}/{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PasswordChangeRequired(models.Model):
    """An account that signs in with a password someone else chose (a one-time password from the
    members page): until its owner picks their own on the account page, that is the only page
    it may use; the password stops working ``ONE_TIME_PASSWORD_DAYS`` after it was issued, and the
    tenant that made the account may issue another."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True)
    issued_at = models.DateTimeField()
    # The tenant whose admin made the account: the only one that may issue it a new password.
    tenant = models.ForeignKey(Tenant, on_delete=models.SET_NULL, null=True, related_name="+")

    def __str__(self) -> str:
        return f"password change required: user {self.user_id}"


class MembershipInvite(models.Model):
    """An account that exists already, asked to join a tenant: it grants nothing until its owner
    accepts on their account page (declining, or an admin cancelling, removes it)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership_invites"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    invited_by = models.CharField(max_length=150)  # the actor's label, as the audit log names it
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="invite_unique_tenant_user")]

    def __str__(self) -> str:
        return f"{self.user_id} invited to {self.tenant_id} as {self.role}"
