from __future__ import annotations

from rest_framework.permissions import BasePermission

from studio.tenants.selectors import Actor


def request_actor(request) -> Actor | None:
    """The actor of a DRF or Django request: an API key's, or the session member's."""
    user = getattr(request, "user", None)
    if user is not None and hasattr(user, "actor"):
        return user.actor
    actor = getattr(getattr(request, "_request", request), "actor", None)
    return actor if actor else None


class IsTenantMember(BasePermission):
    """Authenticated, acting in a tenant, and holding the view's ``required_permission``
    (by HTTP method when it is a dict, e.g. ``{"GET": "flows.view", "POST": "flows.edit"}``)."""

    message = "your role does not allow this"

    def has_permission(self, request, view) -> bool:
        actor = request_actor(request)
        if actor is None:
            return False
        required = getattr(view, "required_permission", "tenant.view")
        if isinstance(required, dict):
            required = required.get(request.method, required.get("*", "tenant.view"))
        return actor.can(required)
