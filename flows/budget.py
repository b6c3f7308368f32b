"""Tenant budgets: spending per calendar month (UTC), checked before every model call.

A tenant's ``settings["budget"]`` may set ``monthly_cost_usd`` and/or ``monthly_tokens``.
Spending is counted in Redis per tenant and month (one round trip per step that used a model),
so the check before a model call is one round trip, not a sum over the month's steps; a
missing counter (new month, flushed Redis) is rebuilt once from the steps in the database.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import cache

import redis
from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

log = logging.getLogger(__name__)

MICRO = Decimal("1000000")  # cost is counted in micro-dollars (integers: exact, atomic)


class BudgetExceeded(Exception):
    pass


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def _key(tenant_id: int) -> str:
    return f"budget:{tenant_id}:{timezone.now():%Y%m}"


def limits_of(tenant) -> dict:
    return (tenant.settings or {}).get("budget") or {}


def month_spend(tenant_id: int) -> tuple[Decimal, int]:
    """(cost in USD, tokens) spent by the tenant this month."""
    key = _key(tenant_id)
    values = _redis().hmget(key, "micro_usd", "tokens")
    if values[0] is None:
        values = _rebuild(tenant_id, key)
    return Decimal(int(values[0])) / MICRO, int(values[1] or 0)


def _rebuild(tenant_id: int, key: str) -> list:
    """The month's spending summed from the database: every step that used a model (map and
    sub-flow steps only repeat their children's), committed ones only."""
    from flows.models import StepRun

    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    totals = (
        StepRun.objects.filter(run__tenant_id=tenant_id, finished_at__gte=start)
        .exclude(node_type__in=("map", "subflow"))
        .aggregate(cost=Sum("cost_usd"), t_in=Sum("tokens_in"), t_out=Sum("tokens_out"))
    )
    micro = int((totals["cost"] or Decimal(0)) * MICRO)
    tokens = (totals["t_in"] or 0) + (totals["t_out"] or 0)
    pipe = _redis().pipeline()
    pipe.hsetnx(key, "micro_usd", micro)
    pipe.hsetnx(key, "tokens", tokens)
    pipe.expire(key, 40 * 24 * 3600)
    pipe.hmget(key, "micro_usd", "tokens")
    return pipe.execute()[-1]


def budget_check(tenant) -> None:
    """Raise BudgetExceeded when the tenant has spent its monthly cost or token budget."""
    limits = limits_of(tenant)
    if not limits:
        return
    try:
        cost, tokens = month_spend(tenant.pk)
    except redis.RedisError as exc:  # the budget must not take the product down with Redis
        log.warning("budget of tenant %s not checked: %s", tenant.pk, exc)
        return
    if "monthly_cost_usd" in limits and cost >= (limit := Decimal(str(limits["monthly_cost_usd"]))):
        raise BudgetExceeded(f"the tenant's monthly budget of ${limit:f} is spent (${cost:f} so far)")
    if "monthly_tokens" in limits and tokens >= int(limits["monthly_tokens"]):
        raise BudgetExceeded(
            f"the tenant's monthly budget of {int(limits['monthly_tokens']):,} tokens is spent"
        )


def budget_record(tenant_id: int, *, cost_usd: Decimal, tokens: int) -> None:
    """Count a step's spending (after its transaction committed), in one round trip."""
    if not cost_usd and not tokens:
        return
    key = _key(tenant_id)
    try:
        pipe = _redis().pipeline(transaction=False)
        pipe.exists(key)
        pipe.hincrby(key, "micro_usd", int(Decimal(cost_usd) * MICRO))
        pipe.hincrby(key, "tokens", tokens)
        if not pipe.execute()[0]:
            # A new month, or Redis lost the key: count again from the database, where this
            # step is already (its transaction committed).
            _redis().delete(key)
            _rebuild(tenant_id, key)
    except redis.RedisError as exc:
        log.warning("spending of tenant %s not counted: %s", tenant_id, exc)
