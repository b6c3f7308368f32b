"""Settings pages the flow domain owns: the tenant's monthly budget, what its flows may reach
(the outbound HTTP hosts, the capabilities granted to each flow), and the approval policies
that make steps wait for a person."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from flows import policies, retention, selectors, services
from flows.budget import limits_of, month_spend, parse_limits
from flows.nodes._http import http_settings_from_text
from flows.nodes.base import parse_capabilities
from studio.tenants.services import tenant_settings_set
from studio.tenants.views import first_error, member_required

# -- run history --------------------------------------------------------------------------------


@member_required("governance.manage")
def settings_runs(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    if request.method == "POST":
        try:
            days = retention.parse_keep_days(request.POST.get("keep_days", ""))
        except ValidationError as exc:
            messages.error(request, first_error(exc))
        else:
            tenant_settings_set(
                tenant=tenant, path=("runs", "keep_days"), value=days, actor=request.actor.label
            )
            kept = retention.keep_days_of(tenant)
            messages.success(
                request, f"Runs are kept for {kept} days." if kept else "Runs are kept until deleted."
            )
        return redirect("flow_settings:runs")
    stored = selectors.run_history(tenant=tenant)
    return render(request, "flows/settings_runs.html", {
        "nav": "settings", "section": "runs", "own_days": retention.own_keep_days(tenant),
        "platform_days": retention.platform_keep_days(), "keep_days": retention.keep_days_of(tenant),
        "stored": stored["runs"], "oldest": stored["oldest"], "expired": retention.expired_count(tenant),
    })  # fmt: skip


# -- budget -------------------------------------------------------------------------------------


@member_required("budget.manage")
def settings_budget(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    if request.method == "POST":
        try:
            limits = parse_limits(cost=request.POST.get("monthly_cost_usd", ""),
                                   tokens=request.POST.get("monthly_tokens", ""))  # fmt: skip
        except ValidationError as exc:
            messages.error(request, first_error(exc))
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


@member_required("flows.grant")
def settings_access(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "http":
                policy = http_settings_from_text(hosts_text=request.POST.get("allowed_hosts", ""),
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
                    needed = selectors.flow_capability_needs(flow)["missing"]
                    granted = [*(flow.granted_capabilities or []), *needed]
                else:
                    granted = parse_capabilities(request.POST.get("granted_capabilities", ""))
                services.flow_update(flow=flow, granted_capabilities=granted, actor=request.actor.label)
                messages.success(request, f"Capabilities of “{flow.name}” saved.")
        except ValidationError as exc:
            messages.error(request, first_error(exc))
        return redirect("flow_settings:access")
    http = (tenant.settings or {}).get("http") or {}
    guards = policies.tenant_policies(tenant.settings)
    flows = []
    for flow in selectors.flow_list_with_latest_graph(tenant=tenant):
        needs = selectors.flow_capability_needs(flow)
        # Each capability, whether it is missing, and the policy (the first that covers it) that
        # makes its steps wait for approval.
        needs["rows"] = [
            (c, c in needs["missing"], next((p.name for p in guards if p.covers({c})), ""))
            for c in needs["needed"]
        ]
        flows.append((flow, needs))
    return render(request, "flows/settings_access.html", {
        "nav": "settings", "section": "access", "flows": flows,
        "allowed_hosts": "\n".join(http.get("allowed_hosts", [])), "allow_private": bool(http.get("allow_private")),
    })  # fmt: skip


# -- approval policies --------------------------------------------------------------------------

POLICY_FIELDS = ("name", "capability", "when", "role", "sla_s")


@member_required("governance.manage")
def settings_policies(request: HttpRequest) -> HttpResponse:
    tenant = request.actor.tenant
    if request.method == "POST":
        if request.POST.get("action") == "remove":
            name = request.POST.get("name", "")
            if policies.policy_remove(tenant=tenant, name=name, actor=request.actor.label):
                messages.success(request, f"Policy {name} removed.")
            else:
                messages.error(request, f"There is no policy {name!r} to remove.")
        else:
            try:
                fields = {f: request.POST.get(f, "") for f in POLICY_FIELDS}
                policy = policies.policy_add(tenant=tenant, fields=fields, actor=request.actor.label)
            except ValidationError as exc:
                messages.error(request, first_error(exc))
            else:
                messages.success(
                    request, f"Policy {policy.name} added: steps needing {policy.capability} now ask first."
                )
        return redirect("flow_settings:policies")
    used = sorted({c for flow in selectors.flow_list_with_latest_graph(tenant=tenant)
                   for c in selectors.flow_capability_needs(flow)["needed"]})  # fmt: skip
    return render(request, "flows/settings_policies.html", {
        "nav": "settings", "section": "policies", "policies": policies.tenant_policies(tenant.settings),
        "roles": policies.DECIDERS, "used_capabilities": used,
    })  # fmt: skip
