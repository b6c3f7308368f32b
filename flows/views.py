"""Flow pages: the list (search, create, start from a template, import, duplicate, delete), the
editor, which is a React app mounted by ``templates/flows/edit.html`` that talks to the API, and a
run's trace (``/runs/<id>/``), live while the run goes on."""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_POST

from flows import engine, selectors, services
from flows.graph import MalformedGraph
from flows.nodes import all_types
from flows.starters import companion_flow_name, starter_get, starter_list
from studio.governance.redaction import trace_rule_names, trace_view_redactor
from studio.tenants.ratelimit import RateLimited
from studio.tenants.views import member_required

MAX_IMPORT_BYTES = 5 * 1024 * 1024  # the graph size limit (DESIGN.md)


@member_required("flows.view")
def flow_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    flows = selectors.flow_list_summaries(tenant=request.actor.tenant, search=query)
    return render(
        request,
        "flows/list.html",
        {
            "nav": "flows",
            "flows": flows.order_by("-updated_at")[:500],
            "query": query,
            "starters": starter_list(),
            "can_edit": request.actor.can("flows.edit"),
        },
    )


@require_POST
@member_required("flows.edit")
def flow_create(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("starter", "")
    name = request.POST.get("name", "").strip()[:120]
    if not slug:
        flow = services.flow_create(tenant=request.actor.tenant, user=request.user, name=name)
        return redirect("flows:edit", pk=flow.pk)
    starter = starter_get(slug)
    if starter is None:
        messages.error(request, "That template is not available.")
        return redirect("flows:list")
    flow = services.starter_install(
        tenant=request.actor.tenant, starter=starter, user=request.user, name=name
    )
    if starter.companions:
        messages.info(request, "Also created and published, for its map and sub-flow nodes: "
                      + ", ".join(companion_flow_name(flow.name, c) for c in starter.companions) + ".")  # fmt: skip
    return redirect("flows:edit", pk=flow.pk)


@require_POST
@member_required("flows.edit")
def flow_import(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a JSON file to import.")
        return redirect("flows:list")
    if upload.size > MAX_IMPORT_BYTES:
        messages.error(request, f"{upload.name} is larger than 5 MB.")
        return redirect("flows:list")
    try:
        document = json.loads(upload.read().decode("utf-8"))
        flow, problems = services.flow_import(
            tenant=request.actor.tenant, document=document, user=request.user
        )
    except (UnicodeDecodeError, json.JSONDecodeError):
        messages.error(request, f"{upload.name} is not a JSON file.")
        return redirect("flows:list")
    except MalformedGraph as exc:
        messages.error(request, f"{upload.name} is not a flow: {exc}")
        return redirect("flows:list")
    note = f" with {len(problems)} problem(s) to fix" if problems else ""
    messages.success(request, f"Imported “{flow.name}”{note}.")
    return redirect("flows:edit", pk=flow.pk)


@require_POST
@member_required("flows.edit")
def flow_duplicate(request: HttpRequest, pk: int) -> HttpResponse:
    flow = selectors.flow_get(tenant=request.actor.tenant, pk=pk)
    copy = services.flow_duplicate(flow=flow, user=request.user)
    messages.success(request, f"Duplicated as “{copy.name}”.")
    return redirect("flows:list")


@require_POST
@member_required("flows.edit")
def flow_delete(request: HttpRequest, pk: int) -> HttpResponse:
    flow = selectors.flow_get(tenant=request.actor.tenant, pk=pk)
    services.flow_delete(flow=flow, actor=request.actor.label)
    messages.success(request, f"Deleted “{flow.name}”.")
    return redirect("flows:list")


@ensure_csrf_cookie  # the editor's API calls send the token from this cookie
@member_required("flows.view")
def flow_edit(request: HttpRequest, pk: int) -> HttpResponse:
    flow = selectors.flow_get(tenant=request.actor.tenant, pk=pk)
    latest = selectors.version_latest(flow=flow)
    # What the first paint needs, in the page: the canvas draws without waiting for three API
    # round trips; the draft's problems (validation) still come from the API right after.
    bootstrap = {
        "name": flow.name,
        "latest_version": latest.number if latest else None,
        "webhook_path": flow.webhook_path,
        "has_webhook_secret": bool(flow.webhook_secret),
        "graph": flow.draft,
        "revision": flow.draft_revision,
        "types": [t.describe() for t in all_types()],
    }
    return render(
        request,
        "flows/edit.html",
        {
            "nav": "flows",
            "flow": flow,
            "can_edit": request.actor.can("flows.edit"),
            "can_run": request.actor.can("flows.run"),
            "can_list_secrets": request.actor.can("secrets.manage"),
            "bootstrap": bootstrap,
        },
    )


# -- a run's trace ------------------------------------------------------------------------------


@member_required("runs.view")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The run, its inputs, outputs and error, and each step with its attempts, timings, tokens
    and cost. ``?fragment=1`` answers the part that changes, for the page's live refresh."""
    tenant = request.actor.tenant
    trace = selectors.run_trace(tenant=tenant, pk=pk, shown=trace_view_redactor(tenant=tenant, person=True))
    context = {
        "nav": "flows", "trace": trace, "run": trace.run, "can_run": request.actor.can("flows.run"),
        "redacted_by": trace_rule_names(tenant.settings), "can_settings": request.actor.can("settings.view"),
    }  # fmt: skip
    if request.GET.get("fragment"):
        return render(request, "flows/_run_body.html", context)
    return render(request, "flows/run.html", context)


@require_POST
@member_required("flows.run")
def run_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Cancel, re-run from the failed steps, or replay on the latest version; back to a trace."""
    run = selectors.run_get(tenant=request.actor.tenant, pk=pk)
    if action == "cancel":
        if engine.run_cancel(run.pk):
            messages.success(request, f"Run #{run.pk} cancelled: queued steps will not start.")
        else:
            messages.error(request, "The run had already ended.")
    elif action == "retry":
        if engine.run_retry(run.pk):
            messages.success(request, f"Run #{run.pk} runs again from its failed steps.")
        else:
            messages.error(request, "Only a failed, cancelled or timed-out run can be re-run.")
    else:  # replay
        try:
            replay = services.run_replay(run=run, version="draft" if run.is_test else None, user=request.user)
        except services.RunRefused as exc:
            messages.error(request, f"Not replayed: {exc}")
        except RateLimited as exc:
            messages.error(request, f"Not replayed: {exc.detail}")
        else:
            what = "the current draft" if replay.is_test else f"version {replay.version.number}"
            messages.success(request, f"Replay of run #{run.pk} on {what}.")
            return redirect("run", pk=replay.pk)
    return redirect("run", pk=run.pk)
