"""Governance tasks: chaining the audit entries recorded on runs' hot paths (beat)."""

from __future__ import annotations

from celery import shared_task

from studio.governance.audit import audit_chain_pending

# A backlog is worked off by chained rounds; this caps one chain (the next beat starts another).
MAX_CHAINED_ROUNDS = 100


@shared_task(name="governance.audit_chain", ignore_result=True)
def audit_chain_task(round_no: int = 0) -> dict:
    """Beat: chain the pending audit entries, a bounded batch per tenant; when a batch was full,
    the next round is enqueued at once. Safe twice at once (the chain's lock, SKIP LOCKED)."""
    result = audit_chain_pending()
    if result.more and round_no + 1 < MAX_CHAINED_ROUNDS:
        audit_chain_task.delay(round_no + 1)
    return {"entries": result.entries, "more": result.more}
