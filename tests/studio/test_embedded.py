"""The embedded PostgreSQL + pgvector and Redis: start, restart with data kept, locks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from studio.embedded import EmbeddedStack


@pytest.fixture
def stack(tmp_path):
    stack = EmbeddedStack(tmp_path / "data")
    yield stack
    stack.stop()


def test_start_write_stop_start_keeps_the_data(stack):
    assert stack.acquire()
    first = stack.start()
    with psycopg.connect(first.database_url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        assert conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        conn.execute("CREATE TABLE kept (v vector(3))")
        conn.execute("INSERT INTO kept VALUES ('[1,2,3]')")
    client = redis.Redis.from_url(first.redis_url)
    client.rpush("queued-work", "job-1")
    client.close()
    stack.stop()

    again = EmbeddedStack(stack.data_dir)
    assert again.acquire()
    second = again.start()
    try:
        with psycopg.connect(second.database_url.replace("postgres://", "postgresql://")) as conn:
            assert conn.execute("SELECT v::text FROM kept").fetchone() == ("[1,2,3]",)
        client = redis.Redis.from_url(second.redis_url)
        assert client.lrange("queued-work", 0, -1) == [b"job-1"]  # the append-only file survived
        client.close()
    finally:
        again.stop()


def test_services_listen_on_loopback_with_passwords(stack):
    assert stack.acquire()
    endpoints = stack.start()
    assert "@127.0.0.1:" in endpoints.database_url and "@127.0.0.1:" in endpoints.redis_url
    port = endpoints.redis_url.rsplit(":", 1)[1].split("/")[0]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=int(port)).ping()
    assert oct(os.stat(stack.keys_path).st_mode & 0o777) == "0o600"


def test_the_redis_password_stays_out_of_the_process_list_whatever_it_starts_with(stack):
    """A generated password may start with "--" (token_urlsafe): given on the command line,
    redis-server read it as an option and would not start (once in 4,096 data dirs)."""
    password = "--looks-like-an-option_" + "x" * 16
    stack.data_dir.mkdir(parents=True)
    stack.keys_path.write_text(json.dumps({"redis_password": password}))
    assert stack.acquire()
    endpoints = stack.start()
    client = redis.Redis.from_url(endpoints.redis_url)
    assert client.ping() and password in endpoints.redis_url
    client.close()
    pid = json.loads(stack.state_path.read_text())["redis"]["pid"]
    assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert oct((stack.redis_dir / "redis.conf").stat().st_mode & 0o777) == "0o600"


def test_a_second_owner_is_refused_while_the_first_lives(stack):
    assert stack.acquire()
    other = EmbeddedStack(stack.data_dir)
    assert not other.acquire()
    assert other.lock_holder() == os.getpid()


def test_a_stale_lock_is_recognised_and_taken_over(stack):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stack.data_dir.mkdir(parents=True)
    stack.lock_path.write_text(str(dead.pid))
    assert stack.acquire()
    assert stack.stale_lock_pid == dead.pid
    assert stack.lock_holder() == os.getpid()


def test_an_attacher_finds_the_running_services(stack):
    assert stack.acquire()
    started = stack.start()
    assert EmbeddedStack(stack.data_dir).running_endpoints() == started
    stack.stop()
    assert EmbeddedStack(stack.data_dir).running_endpoints().database_url is None


def test_an_orphaned_server_is_adopted_not_duplicated(stack):
    """An owner killed with SIGKILL leaves PostgreSQL and Redis running; the next owner adopts them."""
    assert stack.acquire()
    first = stack.start()
    stack.release()  # as if the owner died: the lock is gone, the servers are not
    stack.owned.clear()
    successor = EmbeddedStack(stack.data_dir)
    assert successor.acquire()
    try:
        assert successor.start() == first
    finally:
        successor.stop()
