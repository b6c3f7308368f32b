"""The audit log: append-only, each entry chained by hash to the previous entry of its tenant."""

from __future__ import annotations

import json

from django.db import models

from studio.tenants.models import Tenant, TenantOwnedQuerySet


class AuditEntry(models.Model):
    """One audited event. ``hash`` is the SHA-256 of the previous entry's hash and this entry's
    canonical content (``studio.governance.audit.canonical``). A database trigger refuses any
    UPDATE or DELETE but the deletion of a whole tenant: a change made around it (by someone
    who can switch the trigger off) breaks the chain, and ``audit_verify`` names where."""

    # Deleting a tenant takes its chain with it, and only that (see ``audit_allow_erase``).
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    seq = models.PositiveBigIntegerField()  # 1, 2, 3… per tenant, without gaps
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=150)  # a username, "api-key:<prefix>", or "system:<job>"
    action = models.CharField(max_length=64)  # "flow.published", "memory.purged"…
    target = models.CharField(max_length=200, blank=True)  # "flow:12", "api_key:3"
    # The details as canonical JSON text (what the hash covers, byte for byte): redacted; secret
    # values never, erased subjects as digests.
    data = models.TextField(default="{}")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = TenantOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="audit_unique_seq")]
        indexes = [models.Index(fields=["tenant", "action", "-seq"], name="audit_tenant_action")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor}"

    @property
    def details(self) -> dict:
        return json.loads(self.data)


class AuditPending(models.Model):
    """An entry recorded on a run's hot path (a run started or ended, a model or tool called),
    waiting to be chained by ``audit.audit_chain_pending``, a beat job every few seconds. The
    run's own transaction writes it, without the tenant's chain lock, so that a tenant's runs
    never queue on one another for their audit entries; chaining takes them in the order they
    were recorded."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    created_at = models.DateTimeField()
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    target = models.CharField(max_length=200, blank=True)
    data = models.TextField(
        default="{}"
    )  # canonical JSON text, its free text redacted (``audit.audit_later``)

    class Meta:
        indexes = [models.Index(fields=["tenant", "id"], name="audit_pending_tenant")]

    def __str__(self) -> str:
        return f"pending {self.action} by {self.actor}"
