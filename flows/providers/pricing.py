"""The one price table for model calls, so every step, dashboard and budget check agrees on cost.

Prices are Anthropic's published list prices in USD per million tokens (input, output),
without batch or prompt-caching discounts. Self-hosted models are not in the table and cost 0.
"""

from __future__ import annotations

import functools
import logging
import re
from decimal import Decimal

logger = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
COST_QUANTUM = Decimal("0.000001")

# model family -> (USD per million input tokens, USD per million output tokens)
PRICES: dict[str, tuple[Decimal, Decimal]] = {
    # Sonnet 4.6 is priced at the Sonnet tier ($3/$15), as every Sonnet since 3.5; confirm against
    # the published list when it changes. It is the editor's default: Sonnet 4.5 retires 2026-11-30.
    "claude-sonnet-4-6": (Decimal("3"), Decimal("15")),
    "claude-opus-4-5": (Decimal("5"), Decimal("25")),
    "claude-opus-4-1": (Decimal("15"), Decimal("75")),
    "claude-opus-4": (Decimal("15"), Decimal("75")),
    "claude-sonnet-4-5": (Decimal("3"), Decimal("15")),
    "claude-sonnet-4": (Decimal("3"), Decimal("15")),
    "claude-3-7-sonnet": (Decimal("3"), Decimal("15")),
    "claude-haiku-4-5": (Decimal("1"), Decimal("5")),
    "claude-3-5-haiku": (Decimal("0.80"), Decimal("4")),
}

# "claude-sonnet-4-5-20250929" and "claude-3-5-haiku-latest" are snapshots of their family;
# "claude-opus-4-6" is not a snapshot of "claude-opus-4", so only these suffixes are stripped.
_SNAPSHOT_SUFFIX = re.compile(r"-(\d{8}|latest)$")


def model_family(model: str) -> str | None:
    """The PRICES key for ``model``, or None for a model we have no price for."""
    name = _SNAPSHOT_SUFFIX.sub("", model.strip().lower())
    return name if name in PRICES else None


def cost_usd(model: str, tokens_in: int, tokens_out: int) -> Decimal:
    """What a call cost at list price, to the micro-dollar; 0 for unknown (self-hosted) models."""
    family = model_family(model)
    if family is None:
        if model.startswith("claude-"):
            _warn_unpriced(model)
        return Decimal("0").quantize(COST_QUANTUM)
    price_in, price_out = PRICES[family]
    total = (Decimal(tokens_in) * price_in + Decimal(tokens_out) * price_out) / MILLION
    return total.quantize(COST_QUANTUM)


@functools.cache
def _warn_unpriced(model: str) -> None:
    # A Claude model without a price would make budgets and dashboards silently read 0: say so once.
    logger.warning("no list price for model %r: its calls are recorded at cost 0; add it to PRICES", model)


def known_models() -> list[str]:
    """Model ids for the editor's dropdown, newest families first."""
    return list(PRICES)
