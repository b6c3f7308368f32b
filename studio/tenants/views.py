"""Pages: sign-in, tenant switcher and the settings pages (members, API keys, secrets)."""

from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from studio.tenants import ratelimit, selectors, services
from studio.tenants.middleware import SESSION_PASSWORD_CHANGE_KEY, SESSION_TENANT_KEY
from studio.tenants.roles import Role

log = logging.getLogger(__name__)


class SignInView(LoginView):
    """Django's sign-in page, with failed sign-ins limited per account and per address
    (``ratelimit.signin_refusal``): past the limit, a 429 that says how long to wait, and the
    password is not checked."""

    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        refusal = ratelimit.signin_refusal(request, username)
        if refusal is None:
            return super().post(request, *args, **kwargs)
        log.warning("sign-in to %r from %s refused: too many failed sign-ins", username,
                    ratelimit.client_address(request))  # fmt: skip
        form = self.get_form_class()(request, initial={"username": username})  # unbound: nothing checked
        response = self.render_to_response(
            self.get_context_data(form=form, wait=refusal.wait_text), status=429
        )
        response["Retry-After"] = str(refusal.retry_after)
        return response

    def form_invalid(self, form):
        ratelimit.signin_failed(self.request, form.data.get("username", ""))
        return super().form_invalid(form)

    def form_valid(self, form):
        flag = selectors.one_time_password_of(user=form.get_user())
        if flag is not None and services.one_time_password_expired(flag):  # not signed in
            return self.render_to_response(self.get_context_data(form=form, expired=True), status=403)
        response = super().form_valid(form)
        if flag is not None:
            self.request.session[SESSION_PASSWORD_CHANGE_KEY] = True
            return redirect("account")  # PasswordChangeRequiredMiddleware keeps it there
        return response


@login_required
def account(request):
    """Your account: where you are a member, and your password. Changing it keeps this session
    and ends your others (Django's session hash); a wrong current password counts as a failed
    sign-in for the account (``ratelimit.signin_failed``), and past that limit nothing is checked."""
    user = request.user
    form = PasswordChangeForm(user)
    status = 200
    if request.method == "POST" and request.POST.get("action") in {"accept", "decline"}:
        invite = get_object_or_404(selectors.invites_for_user(user=user), pk=request.POST.get("invite", 0))
        joined = services.invite_answer(invite=invite, accept=request.POST["action"] == "accept")
        if joined is not None:
            request.session[SESSION_TENANT_KEY] = joined.tenant_id  # where they just said they belong
            messages.success(
                request, f"You are a {joined.get_role_display().lower()} of {joined.tenant.name} now."
            )
        else:
            messages.success(request, f"You declined to join {invite.tenant.name}.")
        return redirect("account")
    if request.method == "POST":
        refusal = ratelimit.signin_refusal(request, user.get_username())
        if refusal is not None:
            messages.error(
                request, f"Too many failed sign-ins for this account: try again in {refusal.wait_text}."
            )
            status = 429
        else:
            form = PasswordChangeForm(user, request.POST)
            if form.is_valid():
                form.save()
                update_session_auth_hash(request, form.user)
                services.own_password_chosen(user=user)
                request.session.pop(SESSION_PASSWORD_CHANGE_KEY, None)
                log.info("%s changed their password", user.get_username())
                messages.success(request, "Password changed. Your other sessions are signed out.")
                return redirect("account")
            if "old_password" in form.errors:
                ratelimit.signin_failed(request, user.get_username())
    context = {
        "nav": "account", "form": form, "memberships": selectors.membership_list_for_user(user=user),
        "invites": selectors.invites_for_user(user=user),
    }  # fmt: skip
    return render(request, "tenants/account.html", context, status=status)


def first_error(exc: ValidationError) -> str:
    """A ValidationError as one line for a page's message: ``field: what is wrong``."""
    if hasattr(exc, "error_dict"):
        field, errors = next(iter(exc.message_dict.items()))
        return f"{field.replace('_', ' ')}: {errors[0]}"
    return exc.messages[0]


def member_required(permission: str):
    """A page for members of the current tenant whose role grants ``permission``."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.actor:
                return render(request, "tenants/no_tenant.html", status=403)
            if not request.actor.can(permission):
                return HttpResponseForbidden(render(request, "tenants/forbidden.html").content)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


@login_required
@require_POST
def tenant_switch(request):
    slug = request.POST.get("tenant", "")
    membership = selectors.membership_list_for_user(user=request.user).filter(tenant__slug=slug).first()
    if membership is None:
        raise Http404("no such tenant")
    request.session[SESSION_TENANT_KEY] = membership.tenant_id
    # Stay in the same section, at its top: object ids of the old tenant mean nothing in the
    # new one. Settings may be closed to the new role, so they fall back to the flows list.
    section = request.POST.get("next", "").strip("/").split("/")[0]
    return redirect(f"/{section}/" if section in SWITCH_SECTIONS else "/flows/")


SWITCH_SECTIONS = {"flows", "inbox", "dashboard"}


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


@member_required("settings.view")
def settings_members(request):
    tenant = request.actor.tenant
    new_account = None  # an account made for a new member: its one-time password, shown in this answer only
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "add":
                _check_owner_change(request, request.POST.get("role"))
                added = services.member_add(
                    tenant=tenant,
                    username=request.POST.get("username", ""),
                    role=request.POST.get("role", ""),
                    actor=request.actor.label,
                )
                role = request.POST.get("role")
                if added.one_time_password:
                    new_account = {"username": added.membership.user.get_username(),
                                   "password": added.one_time_password}  # fmt: skip
                elif added.invite:
                    messages.success(request, f"{added.invite.user.get_username()} is invited as {role}: they "
                                              "join when they accept on their account page.")  # fmt: skip
                else:
                    messages.success(request, f"{added.membership.user.get_username()} is now a {role}.")
            elif action == "reissue":
                membership = selectors.member_get(tenant=tenant, pk=int(request.POST.get("membership", 0)))
                password = services.one_time_password_reissue(
                    tenant=tenant, membership=membership, actor=request.actor.label
                )
                new_account = {
                    "username": membership.user.get_username(),
                    "password": password,
                    "again": True,
                }
            elif action == "cancel_invite":
                invite = selectors.invite_get(tenant=tenant, pk=int(request.POST.get("invite", 0)))
                services.invite_cancel(invite=invite, actor=request.actor.label)
                messages.success(request, f"The invitation of {invite.user.get_username()} is cancelled.")
            elif action in {"role", "remove"}:
                membership = selectors.member_get(tenant=tenant, pk=int(request.POST.get("membership", 0)))
                _check_owner_change(request, membership.role)
                if action == "role":
                    _check_owner_change(request, request.POST.get("role"))
                    services.membership_set(
                        tenant=tenant,
                        user=membership.user,
                        role=request.POST.get("role", ""),
                        actor=request.actor.label,
                    )
                    messages.success(
                        request, f"{membership.user.username} is now a {request.POST.get('role')}."
                    )
                else:
                    services.membership_remove(membership=membership, actor=request.actor.label)
                    messages.success(request, f"{membership.user.username} was removed.")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        if new_account is None:
            return redirect("settings:members")
    return render(
        request,
        "tenants/settings_members.html",
        {
            "nav": "settings",
            "section": "members",
            "new_account": new_account,
            "one_time_days": settings.ONE_TIME_PASSWORD_DAYS,
            "members": selectors.member_list(tenant=tenant),
            "awaiting_password": set(selectors.awaiting_own_password(tenant=tenant)),
            "invites": selectors.invite_list(tenant=tenant),
            "roles": Role.choices,
        },
    )


def _check_owner_change(request, role: str | None) -> None:
    if role == Role.OWNER and not request.actor.can("owners.manage"):
        raise ValidationError({"role": "only an owner may grant or change the owner role"})


@member_required("api_keys.manage")
def settings_api_keys(request):
    tenant = request.actor.tenant
    new_key = None
    if request.method == "POST":
        try:
            if request.POST.get("action") == "limits":
                limits = ratelimit.parse_limits(request.POST)
                services.tenant_settings_set(
                    tenant=tenant, path=("rate_limits",), value=limits, actor=request.actor.label
                )
                messages.success(request, "Rate limits saved.")
                return redirect("settings:api_keys")
            if request.POST.get("action") == "revoke":
                api_key = selectors.api_key_get(tenant=tenant, pk=int(request.POST.get("key", 0)))
                services.api_key_revoke(api_key=api_key, actor=request.actor.label)
                messages.success(request, f"Key {api_key.name} was revoked.")
                return redirect("settings:api_keys")
            _check_owner_change(request, request.POST.get("role"))
            issued = services.api_key_create(
                tenant=tenant,
                name=request.POST.get("name", ""),
                role=request.POST.get("role", ""),
                user=request.user,
            )
            new_key = issued.raw_key  # rendered once in this response, never again
        except ValidationError as exc:
            messages.error(request, _errors(exc))
    return render(
        request,
        "tenants/settings_api_keys.html",
        {
            "nav": "settings",
            "section": "api_keys",
            "keys": selectors.api_key_list(tenant=tenant),
            "roles": Role.choices,
            "new_key": new_key,
            "limits": _limits_shown(tenant),
        },
    )


def _limits_shown(tenant) -> list[dict]:
    """Each rate limit as the page shows it: the tenant's own value, and what applies."""
    own, platform = ratelimit.own_limits(tenant), ratelimit.defaults()
    labels = {
        ratelimit.API_REQUESTS: (
            "API requests per minute",
            "per API key, and per person for the pages' own calls",
        ),
        ratelimit.RUNS: (
            "Runs per minute",
            "for the whole tenant: runs started over the API, webhooks and replays",
        ),
    }
    return [
        {"name": name, "label": labels[name][0], "help": labels[name][1], "own": own.get(name),
         "platform": platform[name]}
        for name in ratelimit.LIMITS
    ]  # fmt: skip


@member_required("secrets.manage")
def settings_secrets(request):
    tenant = request.actor.tenant
    if request.method == "POST":
        try:
            if request.POST.get("action") == "delete":
                secret = selectors.secret_get(tenant=tenant, pk=int(request.POST.get("secret", 0)))
                services.secret_delete(secret=secret, actor=request.actor.label)
                messages.success(request, f"Secret {secret.name} was deleted.")
            else:
                secret = services.secret_set(
                    tenant=tenant,
                    name=request.POST.get("name", "").strip(),
                    value=request.POST.get("value", ""),
                    description=request.POST.get("description", ""),
                    user=request.user,
                )
                messages.success(request, f"Secret {secret.name} was saved.")
        except ValidationError as exc:
            messages.error(request, _errors(exc))
        return redirect("settings:secrets")
    return render(
        request,
        "tenants/settings_secrets.html",
        {
            "nav": "settings",
            "section": "secrets",
            "secrets": selectors.secret_list(tenant=tenant),
        },
    )
