"""The circuit breaker, with its state in the real (embedded) Redis the workers share."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from flows.connectors import CircuitOpen, ConnectorError, SSRFRefused
from flows.connectors.breaker import CircuitBreaker, breaker_for
from flows.connectors.http import HttpPolicy, HttpRequest, http_call
from tests.flows.connectors import LocalServer

LOOPBACK = HttpPolicy(allowed_hosts=["127.0.0.1"], allow_private=True)
COOLDOWN_S = 0.3


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def key(redis_client: redis.Redis) -> Iterator[str]:
    """A key no other test uses; its Redis keys are removed afterwards."""
    prefix = f"test:breaker:{uuid.uuid4().hex}"
    yield prefix
    leftovers = list(redis_client.scan_iter(f"{prefix}:*"))
    if leftovers:
        redis_client.delete(*leftovers)


@pytest.fixture
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


def new_breaker(key: str, *, threshold: int = 3) -> CircuitBreaker:
    """A breaker with its own Redis connection, as a separate worker would have."""
    return CircuitBreaker(
        redis.Redis.from_url(settings.REDIS_URL), key, failure_threshold=threshold, cooldown_s=COOLDOWN_S
    )


def get(server: LocalServer, path: str, breaker: CircuitBreaker) -> None:
    http_call(HttpRequest("GET", server.url(path)), policy=LOOPBACK, breaker=breaker)


def test_opens_after_the_threshold_and_then_refuses_without_contacting_the_server(
    server: LocalServer, key: str
):
    breaker = new_breaker(key, threshold=3)
    for path in ("/status/500", "/status/429", "/status/503"):
        with pytest.raises(ConnectorError) as failed:
            get(server, path, breaker)
        assert failed.value.retryable is True

    assert breaker.state() == "open"
    with pytest.raises(CircuitOpen, match=f"circuit breaker {key} is open until") as refused:
        get(server, "/echo", breaker)
    assert refused.value.retryable is True
    assert len(server.requests) == 3


def test_client_errors_do_not_trip_the_breaker(server: LocalServer, key: str):
    breaker = new_breaker(key, threshold=2)
    for _ in range(4):
        with pytest.raises(ConnectorError) as failed:
            get(server, "/status/404", breaker)
        assert failed.value.retryable is False

    assert breaker.state() == "closed"
    assert len(server.requests) == 4


def test_failures_must_be_consecutive(server: LocalServer, key: str):
    breaker = new_breaker(key, threshold=2)
    for path in ("/status/500", "/echo", "/status/500", "/status/404", "/status/500"):
        with contextlib.suppress(ConnectorError):
            get(server, path, breaker)
    assert breaker.state() == "closed"


def test_after_the_cooldown_exactly_one_of_two_concurrent_callers_gets_the_trial(key: str):
    breaker = new_breaker(key, threshold=1)
    breaker.record_failure()
    assert breaker.state() == "open"
    assert breaker.allow() is False
    until = breaker.open_until()
    assert until is not None
    assert time.time() < until <= time.time() + COOLDOWN_S

    time.sleep(COOLDOWN_S + 0.05)
    assert breaker.state() == "half_open"
    assert breaker.open_until() is None
    workers = [new_breaker(key, threshold=1) for _ in range(2)]
    start = threading.Barrier(len(workers))
    answers: list[bool] = []

    def ask(worker: CircuitBreaker) -> None:
        start.wait()
        answers.append(worker.allow())

    threads = [threading.Thread(target=ask, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)

    assert sorted(answers) == [False, True]
    assert breaker.allow() is False  # the trial is still running


def test_a_successful_trial_closes_the_breaker(key: str):
    breaker = new_breaker(key, threshold=1)
    breaker.record_failure()
    time.sleep(COOLDOWN_S + 0.05)
    assert breaker.allow() is True

    breaker.record_success()

    assert breaker.state() == "closed"
    assert breaker.allow() is True
    assert breaker.allow() is True


def test_a_failed_trial_reopens_for_another_cooldown(key: str):
    breaker = new_breaker(key, threshold=1)
    breaker.record_failure()
    time.sleep(COOLDOWN_S + 0.05)
    assert breaker.allow() is True

    breaker.record_failure()

    assert breaker.state() == "open"
    assert breaker.allow() is False
    until = breaker.open_until()
    assert until is not None
    assert until > time.time() + COOLDOWN_S / 2
    time.sleep(COOLDOWN_S + 0.05)
    assert breaker.allow() is True  # the next trial


def test_a_call_after_the_cooldown_is_the_trial_and_its_success_closes(server: LocalServer, key: str):
    breaker = new_breaker(key, threshold=1)
    with pytest.raises(ConnectorError):
        get(server, "/status/500", breaker)
    with pytest.raises(CircuitOpen):
        get(server, "/echo", breaker)
    time.sleep(COOLDOWN_S + 0.05)

    get(server, "/echo", breaker)

    assert breaker.state() == "closed"
    assert [r.path for r in server.requests] == ["/status/500", "/echo"]


def test_a_refused_request_does_not_use_up_the_trial(server: LocalServer, key: str):
    breaker = new_breaker(key, threshold=1)
    breaker.record_failure()
    time.sleep(COOLDOWN_S + 0.05)
    with pytest.raises(SSRFRefused):
        http_call(HttpRequest("GET", server.url("/echo")), policy=HttpPolicy(), breaker=breaker)

    assert breaker.state() == "half_open"
    assert breaker.allow() is True


def test_breaker_for_shares_state_per_tenant_and_connector(redis_client: redis.Redis):
    tenant_id = uuid.uuid4().int % 10**12
    try:
        first = breaker_for(tenant_id=tenant_id, connector="http", failure_threshold=1, cooldown_s=5)
        second = breaker_for(tenant_id=tenant_id, connector="http", failure_threshold=1, cooldown_s=5)
        first.record_failure()

        assert second.state() == "open"
        assert second.redis is first.redis
        assert breaker_for(tenant_id=tenant_id, connector="llm").state() == "closed"
        assert breaker_for(tenant_id=tenant_id + 1, connector="http").state() == "closed"
    finally:
        leftovers = list(redis_client.scan_iter(f"afs:breaker:{tenant_id}:*"))
        if leftovers:
            redis_client.delete(*leftovers)


def test_an_unreachable_redis_lets_calls_through():
    """The breaker protects the remote service; it must not become the outage itself."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    dead = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    breaker = CircuitBreaker(dead, "test:breaker:unreachable", failure_threshold=1)

    breaker.record_failure()

    assert breaker.allow() is True
