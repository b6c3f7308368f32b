"""Governance tasks: chaining the audit entries recorded on runs' hot paths (beat)."""

from __future__ import annotations

from celery import shared_task

from studio.celery import next_round
from studio.governance.audit import audit_chain_pending


@shared_task(name="governance.audit_chain", ignore_result=True)
def audit_chain_task(round_no: int = 0) -> dict:
    """Beat: chain the pending audit entries, a bounded batch per tenant; when a batch was full,
    the next round is enqueued at once. Safe twice at once (the chain's lock, SKIP LOCKED)."""
    result = audit_chain_pending()
    next_round(audit_chain_task, round_no, more=result.more)
    return {"entries": result.entries, "more": result.more}
