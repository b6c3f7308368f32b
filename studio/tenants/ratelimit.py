"""Request-rate limits: API calls per caller, run starts per tenant, and failed sign-ins.

Two limits, each "N per minute", set per tenant on the API keys page (``settings["rate_limits"]``)
or left to the platform's defaults (``STUDIO_API_REQUESTS_PER_MINUTE``,
``STUDIO_RUNS_PER_MINUTE``; 0 turns a default off):

- ``api_requests_per_minute``: every authenticated call under ``/api/v1/``, counted per API key,
  and per person for calls made from a browser session (``ApiRateThrottle``);
- ``runs_per_minute``: runs asked for over HTTP (the runs API, webhooks, replays), counted for
  the whole tenant (``run_admit``, called where a run is about to be created: a refused run
  writes nothing, and a repeat answered from its ``Idempotency-Key`` is not counted).

Each is a token bucket holding N, refilled at N per minute, kept in Redis as one number (GCRA:
the time at which the bucket will be full again), read and moved by one Lua script, so that every
web process shares it, a burst of concurrent calls cannot overdraw it, and Redis's clock is the
only one that counts. A refusal is a 429 with ``Retry-After``; every answer that passed a bucket
says where it stands in ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``
(seconds until the bucket is full again).

Failed sign-ins (``STUDIO_SIGNIN_FAILURES``) are buckets of the same kind, "N per 15 minutes",
per account (the username as typed, in lower case) and per client address: once either is empty,
``/login/`` answers 429 with ``Retry-After`` and does not check the password, until a failure has
been refilled. Successful sign-ins count nothing.

If Redis cannot be reached, calls go through and a warning is logged: the limiter protects the
service, and must not become the reason every call fails.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from functools import cache

import redis
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from studio.realtime import redis_client
from studio.tenants.permissions import request_actor

log = logging.getLogger(__name__)

API_REQUESTS = "api_requests_per_minute"
RUNS = "runs_per_minute"
LIMITS = (API_REQUESTS, RUNS)
MAX_PER_MINUTE = 1_000_000

# KEYS[1]: the bucket. ARGV[1]: microseconds per token; ARGV[2]: the bucket's size in tokens;
# ARGV[3]: tokens owed (calls already let through on this process's credit: counted whatever the
# bucket holds, which may overdraw it); ARGV[4]: 1 to take a token, 0 to only look. The key holds
# the bucket's "theoretical arrival time" (µs): when it will be full again. Answers {allowed,
# remaining, retry_after_us, reset_us} for one more.
_TAKE_LUA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local size = tonumber(ARGV[2])
local full_at = tonumber(redis.call('GET', KEYS[1]) or now)
if full_at < now then full_at = now end
full_at = full_at + tonumber(ARGV[3]) * interval
local after = full_at + interval
local room = size * interval
if after - now > room then
  if full_at > now then redis.call('SET', KEYS[1], full_at, 'PX', math.ceil((full_at - now) / 1000) + 1000) end
  return {0, 0, after - now - room, full_at - now}
end
if ARGV[4] == '0' then
  return {1, math.floor((room - (after - now)) / interval) + 1, 0, full_at - now}
end
redis.call('SET', KEYS[1], after, 'PX', math.ceil((after - now) / 1000) + 1000)
return {1, math.floor((room - (after - now)) / interval), 0, after - now}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int  # the bucket's size: N of "N per minute"
    remaining: int  # calls that would pass right now
    retry_after_s: float  # when refused: until one more would pass
    reset_s: float  # until the bucket is full again

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait, as ``Retry-After`` says them (never 0)."""
        return max(1, math.ceil(self.retry_after_s))

    @property
    def wait_text(self) -> str:
        """The wait as people read it: ``45 s``, ``2 min 56 s``."""
        minutes, seconds = divmod(self.retry_after, 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"

    def headers(self) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_s)),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


class RateLimited(exceptions.APIException):
    """A 429 (code ``rate_limited``): which limit, whose, and when to retry, in the message;
    the limit in ``details``; ``Retry-After`` and the bucket's ``RateLimit-*`` headers."""

    status_code = 429
    default_code = "rate_limited"

    def __init__(self, *, limit: str, per_minute: int, whose: str, decision: Decision) -> None:
        self.response_headers = decision.headers()  # studio.api.exception_handler adds them
        self.wait = decision.retry_after
        what = "API requests" if limit == API_REQUESTS else "runs"
        super().__init__(
            f"rate limit: {per_minute:,} {what} per minute for {whose}; retry in {self.wait} s",
            code="rate_limited",
        )
        self.details = [{"field": None, "limit": limit, "per_minute": per_minute, "retry_after_s": self.wait}]


# -- the buckets ---------------------------------------------------------------------------------


@cache
def _script(client: redis.Redis):
    return client.register_script(_TAKE_LUA)


def _key(bucket: str) -> str:
    """Named after the database too: the test suite's buckets never meet the studio's."""
    return f"afs:rate:{connection.settings_dict['NAME']}:{bucket}"


def bucket_take(
    bucket: str, *, per_second: float, size: int, owed: int = 0, client: redis.Redis | None = None,
    take: bool = True,
) -> Decision:  # fmt: skip
    """Take one token from ``bucket`` (refilled at ``per_second``, holding at most ``size``), after
    counting ``owed`` calls already let through; with ``take=False``, only say whether one would
    be there. Allowed, with a warning in the log, when Redis does not answer."""
    interval_us = max(1, round(1_000_000 / per_second))
    try:
        allowed, remaining, retry_us, reset_us = _script(client or redis_client())(
            keys=[_key(bucket)], args=[interval_us, size, owed, 1 if take else 0]
        )
    except (redis.RedisError, OSError) as exc:
        log.warning("rate limit %s not checked, Redis unavailable: %s", bucket, exc)
        return Decision(True, size, size, 0.0, 0.0)
    return Decision(bool(allowed), size, max(0, int(remaining)), retry_us / 1e6, reset_us / 1e6)


# A bucket far from empty need not be asked about every call. After an answer, this process may let
# through 1/CREDIT_SHARE of what remained (at most CREDIT_MAX calls, within CREDIT_TTL_S) on its own,
# and counts them with its next call to Redis. Up to CREDIT_SHARE processes sharing a bucket can
# never let through more than it held; near the limit (fewer than CREDIT_SHARE left) every call
# asks Redis, so the limit is exact where it bites. The API's cost per call goes from a Redis round
# trip (~0.15 ms here) to one in about fifty calls.
CREDIT_SHARE = 8
CREDIT_MAX = 50
CREDIT_TTL_S = 1.0


@dataclass
class _Credit:
    left: int  # calls this process may still let through on its own
    owed: int  # calls it let through that Redis has not counted yet
    decision: Decision  # Redis's last answer
    until: float  # monotonic time the credit ends


_credits: dict[str, _Credit] = {}
_credits_lock = threading.Lock()


def take(bucket: str, per_minute: int) -> Decision:
    """One call against an "N per minute" limit: a bucket of N, refilled at N a minute."""
    now = time.monotonic()
    with _credits_lock:
        credit = _credits.get(bucket)
        if (
            credit is not None
            and credit.left > 0
            and now < credit.until
            and credit.decision.limit == per_minute
        ):
            credit.left -= 1
            credit.owed += 1
            last = credit.decision
            return Decision(True, per_minute, max(0, last.remaining - credit.owed), 0.0, last.reset_s)
        owed = _credits.pop(bucket).owed if credit is not None else 0
    decision = bucket_take(bucket, per_second=per_minute / 60, size=per_minute, owed=owed)
    left = min(CREDIT_MAX, decision.remaining // CREDIT_SHARE) if decision.allowed else 0
    if left:
        with _credits_lock:
            if len(_credits) > 10_000:  # many buckets at once: forget spent credits (keep the debts)
                for stale in [key for key, c in _credits.items() if c.owed == 0 and c.until <= now]:
                    del _credits[stale]
            _credits.setdefault(bucket, _Credit(left, 0, decision, now + CREDIT_TTL_S))
    return decision


# -- the limits ------------------------------------------------------------------------------------


def defaults() -> dict[str, int | None]:
    """The platform's limits (settings; 0 or None: not limited)."""
    return {name: settings.STUDIO_RATE_LIMITS.get(name) or None for name in LIMITS}


def own_limits(tenant) -> dict[str, int]:
    """What the tenant's admins set (a limit left out follows the platform default)."""
    return dict((tenant.settings or {}).get("rate_limits") or {})


def limits_of(tenant) -> dict[str, int | None]:
    """The limits that apply to ``tenant``: its own where set, else the platform's."""
    return {**defaults(), **{k: v for k, v in own_limits(tenant).items() if k in LIMITS}}


def parse_limits(values: dict[str, str]) -> dict[str, int]:
    """The limits an admin typed, by name: blank follows the platform default; else a whole
    number from 1 to a million. Errors name the field."""
    limits: dict[str, int] = {}
    for name in LIMITS:
        raw = (values.get(name) or "").strip().replace(",", "").replace("_", "")
        if not raw:
            continue
        try:
            number = int(raw)
        except ValueError:
            raise ValidationError(
                {name: f"must be a whole number of calls per minute, not {raw[:40]!r}"}
            ) from None
        if not 1 <= number <= MAX_PER_MINUTE:
            raise ValidationError({name: f"must be from 1 to {MAX_PER_MINUTE:,} per minute"})
        limits[name] = number
    return limits


def admit(tenant, limit: str, bucket: str, whose: str) -> Decision | None:
    """One call against the tenant's ``limit`` in ``bucket``: its decision (None when that limit
    is off), or RateLimited naming ``whose`` bucket it was."""
    per_minute = limits_of(tenant)[limit]
    if not per_minute:
        return None
    decision = take(bucket, per_minute)
    if not decision.allowed:
        raise RateLimited(limit=limit, per_minute=per_minute, whose=whose, decision=decision)
    return decision


def run_admit(tenant) -> None:
    """Count a run the tenant asks for over HTTP; RateLimited when its runs per minute are spent."""
    admit(tenant, RUNS, f"runs:{tenant.pk}", f"tenant {tenant.slug}")


class ApiRateThrottle(BaseThrottle):
    """``api_requests_per_minute`` per API key, or per person and tenant for session calls.
    Unauthenticated calls (webhooks, the schema) are not counted here: a webhook starts a run,
    and runs have their own limit."""

    def allow_request(self, request, view) -> bool:
        actor = request_actor(request)
        if actor is None:
            return True
        if actor.api_key is not None:
            key = actor.api_key
            bucket, whose = f"key:{key.pk}", f"API key {key.name!r} ({key.prefix}…)"
        else:
            user = request.user
            bucket, whose = (
                f"user:{actor.tenant.pk}:{user.pk}",
                f"{user.get_username()} in {actor.tenant.slug}",
            )
        request._request.rate_limit = admit(actor.tenant, API_REQUESTS, bucket, whose)
        return True


class RateLimitHeadersMiddleware:
    """``RateLimit-*`` headers on answers to calls that passed a bucket."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        decision = getattr(request, "rate_limit", None)
        if decision is not None:
            for name, value in decision.headers().items():
                if name not in response:
                    response[name] = value
        return response


# -- failed sign-ins ---------------------------------------------------------------------------

SIGNIN_WINDOW_S = 15 * 60  # the sign-in limits are "N failures per 15 minutes"


def client_address(request) -> str:
    """The caller's address: ``REMOTE_ADDR``, or behind the TLS proxy (``BEHIND_TLS_PROXY``) the
    last ``X-Forwarded-For`` hop, the address that proxy saw."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if settings.SECURE_PROXY_SSL_HEADER and forwarded:
        return forwarded.split(",")[-1].strip()
    return request.META.get("REMOTE_ADDR", "")


def _signin_buckets(request, username: str, *, take: bool) -> list[Decision]:
    """The account's and the address's failed-sign-in buckets (those not turned off), looked at or
    taken from."""
    limits = settings.STUDIO_SIGNIN_FAILURES
    buckets = [
        (f"signin:account:{username.strip().lower()}", limits["per_account"]),
        (f"signin:address:{client_address(request)}", limits["per_address"]),
    ]
    return [
        bucket_take(bucket, per_second=size / SIGNIN_WINDOW_S, size=size, take=take)
        for bucket, size in buckets
        if size
    ]


def signin_refusal(request, username: str) -> Decision | None:
    """Whether a sign-in may be tried: refused (the longer wait of the two) once the account, or
    the address it comes from, has used its failed sign-ins. Looks, counts nothing: only failures
    are counted (``signin_failed``), so people who sign in often are never held up."""
    refusals = [
        decision for decision in _signin_buckets(request, username, take=False) if not decision.allowed
    ]
    return max(refusals, key=lambda decision: decision.retry_after_s, default=None)


def signin_failed(request, username: str) -> None:
    """Count a failed sign-in against the account and the address."""
    _signin_buckets(request, username, take=True)
