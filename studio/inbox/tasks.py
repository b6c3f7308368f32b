"""Inbox Celery tasks: thin, safe to run twice."""

from __future__ import annotations

from celery import shared_task

from studio.inbox import services


@shared_task(name="inbox.reviews_expire", ignore_result=True)
def reviews_expire_task() -> dict:
    """Beat: escalate or expire reviews past their SLA (waits live in the database, not in ETAs)."""
    return services.reviews_expire_due()
