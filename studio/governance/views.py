"""The audit log page (Settings → Audit log): the tenant's entries, newest first, by action,
and a check of the whole chain on demand."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render

from studio.governance.audit import audit_verify
from studio.governance.models import AuditEntry
from studio.tenants.views import member_required

PAGE = 50


@member_required("audit.view")
def audit_log(request):
    tenant = request.actor.tenant
    if request.method == "POST":  # verify the chain
        result = audit_verify(tenant_id=tenant.pk)
        if result.ok:
            messages.success(request, f"The chain holds: {result.entries:,} entries checked, "
                                      f"last hash {result.last_hash[:16]}….")  # fmt: skip
        else:
            messages.error(request, f"The chain is broken at entry #{result.broken_seq}: {result.reason}. "
                                    f"The {result.entries:,} entries before it hold.")  # fmt: skip
        return redirect("audit")
    entries = AuditEntry.objects.for_tenant(tenant)
    actions = list(entries.order_by("action").values_list("action", flat=True).distinct())
    action = request.GET.get("action", "")
    if action in actions:
        entries = entries.filter(action=action)
    before = request.GET.get("before", "")
    if before.isdigit():
        entries = entries.filter(seq__lt=int(before))
    page = list(entries.order_by("-seq")[: PAGE + 1])
    older = page[PAGE - 1].seq if len(page) > PAGE else None
    return render(request, "governance/audit.html", {
        "nav": "settings", "section": "audit", "entries": page[:PAGE], "actions": actions, "action": action,
        "older": older,
    })  # fmt: skip
