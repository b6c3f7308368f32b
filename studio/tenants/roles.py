"""Roles and what each may do: the one permission matrix of the studio.

Views, API permissions, consumers and templates all ask ``role_can``; nothing
else compares role names.
"""

from __future__ import annotations

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    BUILDER = "builder", "Builder"
    REVIEWER = "reviewer", "Reviewer"
    VIEWER = "viewer", "Viewer"


_ALL = frozenset(Role)
_MANAGERS = frozenset({Role.OWNER, Role.ADMIN})

PERMISSIONS: dict[str, frozenset[Role]] = {
    "tenant.view": _ALL,
    "flows.view": _ALL,
    "flows.edit": _MANAGERS | {Role.BUILDER},
    "flows.run": _MANAGERS | {Role.BUILDER},
    # Capabilities (billing.write, http:<host>…) are granted to a flow by admins, not by its builders.
    "flows.grant": _MANAGERS,
    "runs.view": _ALL,
    "reviews.view": _MANAGERS | {Role.REVIEWER, Role.BUILDER},
    "reviews.decide": _MANAGERS | {Role.REVIEWER},
    "memory.read": _MANAGERS | {Role.BUILDER, Role.REVIEWER},
    "memory.write": _MANAGERS | {Role.BUILDER},
    "dashboard.view": _ALL,
    "settings.view": _MANAGERS,
    "members.manage": _MANAGERS,
    "api_keys.manage": _MANAGERS,
    "secrets.manage": _MANAGERS,
    "budget.manage": _MANAGERS,
    # Approval policies and redaction rules.
    "governance.manage": _MANAGERS,
    "audit.view": _MANAGERS,
    # Only an owner may make or unmake owners, so admins cannot lock owners out.
    "owners.manage": frozenset({Role.OWNER}),
}


def role_can(role: str | None, permission: str) -> bool:
    """Whether ``role`` grants ``permission``; an unknown permission is a programming error."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return role is not None and role in PERMISSIONS[permission]


def roles_with(permission: str) -> list[str]:
    return [role.value for role in Role if role in PERMISSIONS[permission]]
