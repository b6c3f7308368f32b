"""Settings pages the flow domain owns: the tenant's monthly budget, and what its flows may
reach (the outbound HTTP hosts, the capabilities granted to each flow)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from flows import selectors, services
from flows.budget import limits_of, month_spend
from flows.graph import graph_capabilities
from flows.nodes.base import capability_granted
from studio.tenants.services import tenant_settings_set
from studio.tenants.views import member_required

MAX_HOSTS = 200
HOST_PATTERN = re.compile(r"^(?=.*[a-z0-9])[a-z0-9*?.:\[\]-]{1,253}$")
CAPABILITY_PATTERN = re.compile(r"^[a-z][a-z0-9_.*:-]{0,199}$")


# -- budget -------------------------------------------------------------------------------------


def budget_limits(*, cost: str, tokens: str) -> dict:
    """The limits an admin typed: blank means none; else a non-negative amount (cents and
    below: six decimals) or a whole number of tokens. Errors name the field."""
    limits: dict = {}
    if cost.strip():
        try:
            amount = Decimal(cost.strip().lstrip("$").replace(",", ""))
        except InvalidOperation:
            raise ValidationError(
                {"monthly_cost_usd": "must be an amount in US dollars, e.g. 250 or 12.50"}
            ) from None
        if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -6:
            raise ValidationError({"monthly_cost_usd": "must be zero or more, with at most six decimals"})
        limits["monthly_cost_usd"] = str(amount)
    if tokens.strip():
        try:
            count = int(tokens.strip().replace(",", "").replace("_", ""))
        except ValueError:
            raise ValidationError({"monthly_tokens": "must be a whole number of tokens"}) from None
        if count < 0:
            raise ValidationError({"monthly_tokens": "must be zero or more"})
        limits["monthly_tokens"] = count
    return limits


@member_required("budget.manage")
def settings_budget(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    if request.method == "POST":
        try:
            limits = budget_limits(cost=request.POST.get("monthly_cost_usd", ""),
                                   tokens=request.POST.get("monthly_tokens", ""))  # fmt: skip
        except ValidationError as exc:
            messages.error(request, _first_error(exc))
        else:
            tenant_settings_set(tenant=tenant, path=("budget",), value=limits, actor=request.actor.label)
            messages.success(
                request, "Budget saved." if limits else "Budget removed: spending is not limited."
            )
        return redirect("flow_settings:budget")
    limits = limits_of(tenant)
    cost, tokens = month_spend(tenant.pk)
    cost_limit = Decimal(limits["monthly_cost_usd"]) if "monthly_cost_usd" in limits else None
    token_limit = int(limits["monthly_tokens"]) if "monthly_tokens" in limits else None
    return render(request, "flows/settings_budget.html", {
        "nav": "settings", "section": "budget", "cost": cost, "tokens": tokens,
        "cost_limit": cost_limit, "token_limit": token_limit,
        "cost_share": _share(cost, cost_limit), "token_share": _share(tokens, token_limit),
    })  # fmt: skip


def _share(spent, limit) -> float | None:
    if limit is None:
        return None
    return 1.0 if not limit else min(1.0, float(spent) / float(limit))


# -- what flows may reach -----------------------------------------------------------------------


def http_policy_from(*, hosts_text: str, allow_private: bool) -> dict:
    """The tenant's outbound HTTP settings from the form: one host pattern per line."""
    hosts = []
    for number, line in enumerate(hosts_text.splitlines(), start=1):
        host = line.strip().lower()
        if not host or host.startswith("#"):
            continue
        if "://" in host or "/" in host or not HOST_PATTERN.match(host):
            raise ValidationError({"allowed_hosts": f"line {number}: {line.strip()[:60]!r} is not a host name "
                                                    "or pattern (e.g. api.example.com or *.example.com)"})  # fmt: skip
        if host not in hosts:
            hosts.append(host)
    if len(hosts) > MAX_HOSTS:
        raise ValidationError({"allowed_hosts": f"at most {MAX_HOSTS} hosts"})
    return {"allowed_hosts": hosts, "allow_private": allow_private}


def capabilities_from(text: str) -> list[str]:
    """Capabilities typed in a field, separated by commas, spaces or new lines."""
    granted: list[str] = []
    for item in re.split(r"[\s,]+", text.strip()):
        if not item:
            continue
        if not CAPABILITY_PATTERN.match(item):
            example = "e.g. http:api.example.com, billing.write, pricing.*"
            raise ValidationError({"granted_capabilities": f"{item[:60]!r} is not a capability ({example})"})
        if item not in granted:
            granted.append(item)
    return granted


@member_required("flows.grant")
def settings_access(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "http":
                policy = http_policy_from(hosts_text=request.POST.get("allowed_hosts", ""),
                                          allow_private=request.POST.get("allow_private") == "on")  # fmt: skip
                tenant_settings_set(tenant=tenant, path=("http",), value=policy, actor=request.actor.label)
                messages.success(
                    request, f"Outbound HTTP saved: {len(policy['allowed_hosts'])} host pattern(s)."
                )
            else:
                flow_id = request.POST.get("flow", "")
                flows = selectors.flow_list_with_latest_graph(tenant=tenant)
                flow = get_object_or_404(flows, pk=int(flow_id) if flow_id.isdigit() else 0)
                if action == "grant_needed":
                    needed = _needs(flow)["missing"]
                    granted = [*(flow.granted_capabilities or []), *needed]
                else:
                    granted = capabilities_from(request.POST.get("granted_capabilities", ""))
                services.flow_update(flow=flow, granted_capabilities=granted, actor=request.actor.label)
                messages.success(request, f"Capabilities of “{flow.name}” saved.")
        except ValidationError as exc:
            messages.error(request, _first_error(exc))
        return redirect("flow_settings:access")
    http = (tenant.settings or {}).get("http") or {}
    flows = [(flow, _needs(flow)) for flow in selectors.flow_list_with_latest_graph(tenant=tenant)]
    return render(request, "flows/settings_access.html", {
        "nav": "settings", "section": "access", "flows": flows,
        "allowed_hosts": "\n".join(http.get("allowed_hosts", [])), "allow_private": bool(http.get("allow_private")),
    })  # fmt: skip


def _needs(flow) -> dict:
    """What the flow's draft and latest version (``flow.latest_graph``) need, and which of that
    is not granted."""
    granted = frozenset(flow.granted_capabilities or [])
    needed: set[str] = set()
    for document in (flow.draft, flow.latest_graph):
        for capabilities in graph_capabilities(document or {}).values():
            needed |= capabilities
    return {
        "needed": sorted(needed),
        "missing": sorted(c for c in needed if not capability_granted(c, granted)),
    }


def _first_error(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        field, errors = next(iter(exc.message_dict.items()))
        return f"{field.replace('_', ' ')}: {errors[0]}"
    return exc.messages[0]
