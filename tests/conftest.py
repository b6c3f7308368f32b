from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from studio.supervisor import web_argv, worker_argv
from studio.tenants.roles import Role
from tests.factories import make_api_key, make_member, make_tenant

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class Workers:
    main: subprocess.Popen
    io: subprocess.Popen
    main_name: str
    io_name: str


@dataclass
class Trio:
    """An owner, a teammate (builder) in the same tenant, and an outsider who owns another."""

    tenant: object
    owner: object
    teammate: object
    other_tenant: object
    outsider: object


@pytest.fixture
def trio(db) -> Trio:
    tenant, other = make_tenant("Acme"), make_tenant("Globex")
    return Trio(
        tenant=tenant,
        owner=make_member(tenant, Role.OWNER),
        teammate=make_member(tenant, Role.BUILDER),
        other_tenant=other,
        outsider=make_member(other, Role.OWNER),
    )


@pytest.fixture
def api():
    def client_for(tenant, role: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, role)}")
        return client

    return client_for


@pytest.fixture
def api_keys_kept():
    """This process keeps the API keys it found (``key_cache``): its listener has subscribed."""
    from studio.tenants import key_cache

    wait_for(lambda: key_cache._listener().live, timeout=10, what="the API key listener subscribed")


def database_url_for_tests() -> str:
    """DATABASE_URL pointing at the test database pytest-django created."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return parts._replace(path="/" + settings.DATABASES["default"]["NAME"]).geturl()


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url_for_tests(), **extra}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


def run_bench(name: str, *, timeout: float) -> dict:
    """``manage.py bench <name> --quick --json`` on the test services; its report, once it exited 0."""
    result = subprocess.run(
        [sys.executable, "manage.py", "bench", name, "--quick", "--json"],
        cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(result.stdout)


def wait_for(predicate, *, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout} s")


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


# Short leases in tests, so a lost worker's step is re-queued within seconds.
WORKER_ENV = {"STEP_LEASE_MARGIN_S": "2"}


def start_worker(name: str, *, queue: str, pool: str, concurrency: int, log_name: str) -> subprocess.Popen:
    argv = worker_argv(name, queue=queue, pool=pool, concurrency=concurrency)
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / log_name, "w") as log:
        return subprocess.Popen(
            argv, cwd=ROOT, env=child_env(**WORKER_ENV), stdout=log, stderr=subprocess.STDOUT
        )


def wait_for_worker(name: str, proc: subprocess.Popen) -> None:
    from studio.celery import app

    def answered():
        return any(key.startswith(name) for reply in app.control.ping(timeout=0.5) for key in reply)

    wait_for(answered, timeout=60, what=f"the Celery worker {name} answered a ping", proc=proc)


@pytest.fixture(scope="session")
def celery_workers(django_db_setup, django_db_blocker):
    """Real Celery workers on the real broker, using the test database, as `up` runs them: a
    prefork worker for control work and a thread-pool worker for model and HTTP calls.

    Tests that use them must be transactional (``transaction=True``): a worker cannot see
    rows inside a per-test transaction."""
    tag = f"test-{os.getpid()}"
    main = start_worker(f"{tag}@", queue=settings.CELERY_TASK_DEFAULT_QUEUE, pool="prefork", concurrency=2,
                        log_name="celery-worker.log")  # fmt: skip
    io = start_worker(f"{tag}-io@", queue=settings.CELERY_IO_QUEUE, pool="threads", concurrency=8,
                      log_name="celery-worker-io.log")  # fmt: skip
    try:
        wait_for_worker(f"{tag}@", main)
        wait_for_worker(f"{tag}-io@", io)
        host = socket.gethostname()
        yield Workers(main=main, io=io, main_name=f"{tag}@{host}", io_name=f"{tag}-io@{host}")
    finally:
        stop_process(io)
        stop_process(main)


@pytest.fixture
def celery_worker(celery_workers):
    """The session's workers, for one test; at the end the test waits until its runs are over,
    so the database flush between transactional tests never races a worker's transaction."""
    yield celery_workers
    from flows.models import Run, RunStatus, StepRun, StepStatus
    from studio.celery import app

    def quiet() -> bool:
        if Run.objects.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists():
            return False
        if StepRun.objects.filter(status=StepStatus.RUNNING).exists():
            return False
        # Late no-op tasks (a child run's notice after its map completed…) still lock rows:
        # the queues must be empty and the workers idle before the tables are flushed.
        with app.connection_for_write() as conn:
            client = conn.channel().client
            if any(
                client.llen(queue) for queue in (settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_IO_QUEUE)
            ):
                return False
        active = app.control.inspect(timeout=0.5).active() or {}
        return not any(active.values())

    try:
        wait_for(quiet, timeout=30, what="the test's runs finished")
    finally:
        time.sleep(0.1)  # the last task commits, then acknowledges


@pytest.fixture(scope="session")
def live_server_url(django_db_setup, django_db_blocker, celery_workers):
    """The ASGI app served by uvicorn in its own process, on the test database."""
    from studio.embedded import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "web.log", "w") as log:
        argv = web_argv(host="127.0.0.1", port=port)
        proc = subprocess.Popen(argv, cwd=ROOT, env=child_env(), stdout=log, stderr=subprocess.STDOUT)

        def serving():
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2)
            except urllib.error.HTTPError:
                return True  # a 503 still means it serves
            except OSError:
                return False
            return True

        try:
            wait_for(serving, timeout=60, what="the web server answered", proc=proc)
            yield url
        finally:
            stop_process(proc)


@pytest.fixture(autouse=True)
def _fast_password_hashing(request, settings):
    # PBKDF2's deliberate slowness costs ~0.3 s per user; tests are not attackers. Not for
    # tests whose users log in to a server process, which only knows the real hashers.
    if "live_server_url" not in request.fixturenames:
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
