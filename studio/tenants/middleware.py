from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.utils.functional import SimpleLazyObject

from studio.api import error_json, is_api_request
from studio.tenants.selectors import Actor, membership_for

SESSION_TENANT_KEY = "tenant_id"
# Set at sign-in for an account that must choose its own password (``PasswordChangeRequired``).
SESSION_PASSWORD_CHANGE_KEY = "password_change_required"
PASSWORD_CHANGE_ALLOWED = ("/account/", "/logout/", "/static/")


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


class PasswordChangeRequiredMiddleware:
    """A session that must choose its password first reaches only the account page (and can sign
    out): pages redirect there, API calls answer 403 ``password_change_required``. Read from the
    session, so other requests pay nothing."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.session.get(SESSION_PASSWORD_CHANGE_KEY) and not request.path_info.startswith(
            PASSWORD_CHANGE_ALLOWED
        ):
            message = "choose your own password on your account page first"
            if is_api_request(request):
                return error_json(403, message, code="password_change_required")
            messages.info(request, "Choose your own password before you go on.")
            return redirect("account")
        return self.get_response(request)
