"""Tenant budgets: spending per calendar month (UTC), checked before every model call.

A tenant's ``settings["budget"]`` may set ``monthly_cost_usd`` and/or ``monthly_tokens``.
Spending is counted in ``MonthlySpend``, in the transaction that records the step that spent it
(``spend_statement``, sent in the same round trip as the step's checkpoint): a step is counted
exactly once, whatever happens to the worker after its commit. Each tenant's month is spread
over ``SPEND_SHARDS`` rows, chosen by run, so concurrent runs do not queue on one row's lock;
checking a budget sums them (one query, only for tenants that have a budget).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from flows.models import MonthlySpend

MICRO = Decimal("1000000")  # cost is counted in micro-dollars (integers: exact)
SPEND_SHARDS = 16


class BudgetExceeded(Exception):
    pass


def this_month() -> date:
    return timezone.now().date().replace(day=1)


def limits_of(tenant) -> dict:
    return (tenant.settings or {}).get("budget") or {}


_TABLE = connection.ops.quote_name(MonthlySpend._meta.db_table)
_SPEND_SQL = (
    f"INSERT INTO {_TABLE} (tenant_id, month, shard, micro_usd, tokens) VALUES (%s, %s, %s, %s, %s) "
    f"ON CONFLICT (tenant_id, month, shard) DO UPDATE SET micro_usd = {_TABLE}.micro_usd + EXCLUDED.micro_usd, "
    f"tokens = {_TABLE}.tokens + EXCLUDED.tokens"
)
_MONTH_SQL = (
    f"SELECT COALESCE(SUM(micro_usd), 0), COALESCE(SUM(tokens), 0) FROM {_TABLE} "
    "WHERE tenant_id = %s AND month = %s"
)


def spend_statement(*, tenant_id: int, run_id: int, cost_usd: Decimal, tokens: int) -> tuple[str, list]:
    """The statement that counts a step's spending, for its checkpoint's transaction."""
    micro = int(Decimal(cost_usd) * MICRO)
    return _SPEND_SQL, [tenant_id, this_month(), run_id % SPEND_SHARDS, micro, tokens]


def month_spend(tenant_id: int) -> tuple[Decimal, int]:
    """(cost in USD, tokens) spent by the tenant this month."""
    with connection.cursor() as cursor:
        cursor.execute(_MONTH_SQL, [tenant_id, this_month()])
        micro, tokens = cursor.fetchone()
    return Decimal(int(micro)) / MICRO, int(tokens)


def parse_limits(*, cost: str, tokens: str) -> dict:
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


def budget_check(tenant) -> None:
    """Raise BudgetExceeded when the tenant has spent its monthly cost or token budget."""
    limits = limits_of(tenant)
    if not limits:
        return
    cost, tokens = month_spend(tenant.pk)
    if "monthly_cost_usd" in limits and cost >= (limit := Decimal(str(limits["monthly_cost_usd"]))):
        raise BudgetExceeded(f"the tenant's monthly budget of ${limit:f} is spent (${cost:f} so far)")
    if "monthly_tokens" in limits and tokens >= int(limits["monthly_tokens"]):
        raise BudgetExceeded(
            f"the tenant's monthly budget of {int(limits['monthly_tokens']):,} tokens is spent"
        )
