"""A circuit breaker per tenant and connector, with its state in Redis.

The state has to be shared: the calls of one tenant to one API are spread over every
worker on every machine, and a breaker kept in process memory would let each of them keep
hammering a service that is down. Everything is expressed with Redis keys and their
expiry, so no worker's clock is trusted and no lock is held across a call:

- ``<key>:failures`` counts consecutive retryable failures (INCR is atomic).
- ``<key>:tripped`` exists while the breaker is not closed (open or half-open).
- ``<key>:open`` exists while the cooldown runs; it expires after ``cooldown_s`` and holds
  the time it was opened. Tripped without open is half-open.
- ``<key>:trial`` is taken with SET NX by the one caller allowed through when half-open.

If Redis cannot be reached the breaker lets calls through and logs: it protects the remote
service and our workers' time, and must not itself become the reason every call fails.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from django.conf import settings
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

# How long the half-open trial holds its slot if its worker dies before recording the
# outcome. Longer than a normal connector call, so a slow trial is not joined by a second.
TRIAL_TTL_S = 60.0

_client: redis.Redis | None = None
_client_lock = threading.Lock()


class CircuitBreaker:
    """Closed → (failure_threshold retryable failures) → open → (cooldown_s) → half-open.

    Half-open lets exactly one trial call through: its success closes the breaker, its
    failure opens it for another cooldown.
    """

    def __init__(
        self, redis_client: redis.Redis, key: str, *, failure_threshold: int = 5, cooldown_s: float = 30.0
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_s <= 0:
            raise ValueError("cooldown_s must be positive")
        self.redis = redis_client
        self.key = key
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._failures = f"{key}:failures"
        self._tripped = f"{key}:tripped"
        self._open = f"{key}:open"
        self._trial = f"{key}:trial"

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.key}>"

    def allow(self) -> bool:
        """Whether a call may go ahead now. Half-open: True for exactly one caller."""
        try:
            tripped, cooling = self._tripped_and_cooling()
            if not tripped:
                return True
            if cooling:
                return False
            trial_ms = int(TRIAL_TTL_S * 1000)
            return bool(self.redis.set(self._trial, time.time(), nx=True, px=trial_ms))
        except redis.RedisError as exc:
            log.warning("circuit breaker %s: Redis unavailable, letting the call through: %s", self.key, exc)
            return True

    def record_success(self) -> None:
        """The remote side answered: close the breaker and forget earlier failures."""
        try:
            self.redis.delete(self._failures, self._tripped, self._open, self._trial)
        except redis.RedisError as exc:
            log.warning("circuit breaker %s: could not record a success: %s", self.key, exc)

    def record_failure(self) -> None:
        """Count a retryable failure; open at the threshold, or reopen after a failed trial."""
        try:
            if self.redis.exists(self._tripped):
                # A failed half-open trial (or a call that began before the breaker opened and
                # failed late): the service is still down, so wait another full cooldown.
                self._trip()
                return
            if self.redis.incr(self._failures) >= self.failure_threshold:
                self._trip()
                log.warning("circuit breaker %s opened for %s s", self.key, self.cooldown_s)
        except redis.RedisError as exc:
            log.warning("circuit breaker %s: could not record a failure: %s", self.key, exc)

    def _trip(self) -> None:
        """Open for one cooldown, atomically (MULTI), releasing any half-open trial."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self._open, time.time(), px=int(self.cooldown_s * 1000))
        pipe.set(self._tripped, 1)
        pipe.delete(self._trial)
        pipe.execute()

    def state(self) -> str:
        """ "closed", "open" (cooling down) or "half_open" (the next caller is the trial)."""
        tripped, cooling = self._tripped_and_cooling()
        if not tripped:
            return "closed"
        return "open" if cooling else "half_open"

    def _tripped_and_cooling(self) -> tuple[bool, bool]:
        """Both flags in one round trip, since allow() runs before every call."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.exists(self._tripped)
        pipe.exists(self._open)
        tripped, cooling = pipe.execute()
        return bool(tripped), bool(cooling)

    def open_until(self) -> float | None:
        """When the cooldown ends (a Unix time), or None when not cooling down (or Redis is away)."""
        try:
            remaining_ms = self.redis.pttl(self._open)
        except redis.RedisError as exc:
            log.warning("circuit breaker %s: could not read the cooldown: %s", self.key, exc)
            return None
        if remaining_ms is None or remaining_ms < 0:
            return None
        return time.time() + remaining_ms / 1000


def _redis_client() -> redis.Redis:
    """One client (with its connection pool) per process, made on first use.

    Made lazily so importing this module needs no Redis, and with socket timeouts and a
    single quick retry so a stuck or restarting Redis delays a connector call by seconds,
    not forever.
    """
    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    settings.REDIS_URL,
                    socket_timeout=5,
                    socket_connect_timeout=5,
                    health_check_interval=30,
                    retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
                )
    return _client


def breaker_for(
    *, tenant_id: int, connector: str, failure_threshold: int = 5, cooldown_s: float = 30.0
) -> CircuitBreaker:
    """The breaker of one tenant's use of one connector, so one tenant's bad endpoint
    never blocks another tenant, nor the same tenant's other connectors."""
    return CircuitBreaker(
        _redis_client(),
        f"afs:breaker:{tenant_id}:{connector}",
        failure_threshold=failure_threshold,
        cooldown_s=cooldown_s,
    )
