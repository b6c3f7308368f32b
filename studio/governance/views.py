"""Governance settings pages: the audit log (the tenant's entries, newest first, by action,
and a check of the whole chain on demand), and redaction (the built-in rules, the tenant's
own, and a sample to try them on)."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from studio.governance import redaction
from studio.governance.audit import (
    audit_export_chunk,
    audit_export_start,
    audit_pending_count,
    audit_verify_recorded,
)
from studio.governance.models import AuditEntry
from studio.tenants.views import first_error, member_required

PAGE = 50


@member_required("audit.view")
def audit_log(request):
    tenant = request.actor.tenant
    if request.method == "POST":  # verify the chain, with what runs recorded in the last seconds
        result = audit_verify_recorded(tenant_id=tenant.pk)
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
        "older": older, "pending": audit_pending_count(tenant_id=tenant.pk),
    })  # fmt: skip


@member_required("audit.view")
def audit_export(request):
    """The chain as a JSON Lines file (``audit_export_response``)."""
    try:
        return audit_export_response(tenant=request.actor.tenant, actor=request.actor.label,
                                     from_param=request.GET.get("from", "1"))  # fmt: skip
    except ValueError as exc:
        return HttpResponseBadRequest(str(exc))


def audit_export_response(*, tenant, actor: str, from_param: str) -> StreamingHttpResponse:
    """The tenant's chain from entry ``from_param`` to the export's own entry, streamed in chunks,
    each line with what its hash covers (``audit_export_chunk``); ValueError for a bad ``from``."""
    if not from_param.isdigit() or int(from_param) < 1:
        raise ValueError("from: a positive entry number")
    from_seq = int(from_param)
    to_seq = audit_export_start(tenant_id=tenant.pk, actor=actor, from_seq=from_seq)
    response = StreamingHttpResponse(_export_stream(tenant.pk, from_seq, to_seq),
                                     content_type="application/jsonl; charset=utf-8")  # fmt: skip
    name = f"audit-{tenant.slug}-{timezone.now():%Y%m%d-%H%M%S}.jsonl"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


async def _export_stream(tenant_id: int, from_seq: int, to_seq: int):
    """Chunk after chunk (asynchronous, so an ASGI server streams it instead of reading it all)."""
    after = from_seq - 1
    while after < to_seq:
        text, last = await sync_to_async(audit_export_chunk)(
            tenant_id=tenant_id, after_seq=after, to_seq=to_seq
        )
        if last == after:
            return
        yield text
        after = last


RULE_FIELDS = ("name", "pattern", "replacement")
SAMPLE_MAX_CHARS = 5_000


@member_required("governance.manage")
def redaction_rules(request):
    tenant = request.actor.tenant
    if request.method == "POST":
        try:
            if request.POST.get("action") == "traces":
                chosen = redaction.trace_rules_set(
                    tenant=tenant, names=request.POST.getlist("traces"), actor=request.actor.label
                )
                messages.success(request, f"Run traces apply {', '.join(chosen)}." if chosen
                                 else "Run traces are not redacted.")  # fmt: skip
            elif request.POST.get("action") == "remove":
                name = request.POST.get("name", "")
                if redaction.redaction_rule_remove(tenant=tenant, name=name, actor=request.actor.label):
                    messages.success(request, f"Rule {name} removed.")
                else:
                    messages.error(request, f"There is no rule of your own named {name!r}.")
            else:
                fields = {f: request.POST.get(f, "") for f in RULE_FIELDS}
                rule = redaction.redaction_rule_add(tenant=tenant, fields=fields, actor=request.actor.label)
                messages.success(
                    request,
                    f"Rule {rule['name']} added: tick it on the memory namespaces that should apply it.",
                )
        except ValidationError as exc:
            messages.error(request, first_error(exc))
        return redirect("redaction")
    rules = redaction.tenant_rules(tenant.settings)
    sample = request.GET.get("sample", "")[:SAMPLE_MAX_CHARS]
    return render(request, "governance/redaction.html", {
        "nav": "settings", "section": "redaction", "rules": list(rules.values()),
        "sample": sample, "redacted": redaction.redact(sample, list(rules), rules) if sample else "",
        "trace_rules": redaction.trace_rule_names(tenant.settings),
    })  # fmt: skip
