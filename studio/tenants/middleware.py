from __future__ import annotations

from django.utils.functional import SimpleLazyObject

from studio.tenants.selectors import Actor, membership_for

SESSION_TENANT_KEY = "tenant_id"


def session_actor(request) -> Actor | None:
    """The member acting through this browser session, in the tenant chosen in the switcher."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    membership = membership_for(user=user, tenant_id=request.session.get(SESSION_TENANT_KEY))
    if membership is None:
        return None
    return Actor(tenant=membership.tenant, role=membership.role, user=user)


class CurrentTenantMiddleware:
    """Sets ``request.actor`` (lazily, so requests that never ask pay no query)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.actor = SimpleLazyObject(lambda: session_actor(request))
        return self.get_response(request)
