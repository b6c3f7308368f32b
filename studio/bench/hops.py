"""Benchmark-only Celery tasks for ``bench engine``: chains of hops, each task sending the next
from the worker, as a step sends its successor. The bench's workers import this module
(``celery_workers(include=...)``); ``up`` never does.

Two baselines for a worker step, on the same broker, workers and database as the engine:

- ``bare_hop``: a no-op task that sends the next one: what Celery alone costs per step (a
  client round trip has no worker-side send; a Celery ``chain`` carries its remaining links in
  every message, which for 198 links costs more than the hop itself).
- ``floor_hop``: the least a step costs that keeps DESIGN.md's execution contract: claim with a
  compare-and-set carrying a lease (one statement); then, in a transaction, lock the run, read
  the step and its successor, write the step finished and the successor queued; on commit, send
  the successor's task. The engine's round trips (its transaction packed as the engine packs
  it, ``packed_transaction``) and send (``send_tasks``), without its Python (graph, node,
  context, events, counters). A chain of these next to a chain of engine steps says how much of
  a worker step is the contract and how much is the engine.

The rows live in a scratch schema (``hop_schema``) made for the run and dropped after it. The
tasks go to a queue of their own (``QUEUE``), which only the bench's I/O worker consumes: another
worker on the I/O queue (the test suite's) would not know them, and the chain would never end.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from celery import shared_task
from django.conf import settings
from django.db import connection, transaction

from studio.celery import send_tasks
from studio.rows import packed_transaction

LEASE_S = 300
POLL_S = 0.02  # how often a waiting benchmark reads whether a run ended
QUEUE = f"{settings.CELERY_IO_QUEUE}.bench-hops"
_TASK = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@contextmanager
def hop_schema() -> Iterator[str]:
    """A scratch schema with a run table and a hop table; dropped on the way out."""
    schema = f"bench_hops_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE SCHEMA {schema};"
            f"CREATE TABLE {schema}.run (id bigserial PRIMARY KEY, status text NOT NULL,"
            "  created_at timestamptz NOT NULL DEFAULT clock_timestamp(), finished_at timestamptz);"
            f"CREATE TABLE {schema}.hop (id bigserial PRIMARY KEY, run_id bigint NOT NULL REFERENCES"
            f"  {schema}.run, seq integer NOT NULL, status text NOT NULL, lease_token text NOT NULL DEFAULT '',"
            "  lease_expires_at timestamptz, started_at timestamptz, finished_at timestamptz, output jsonb,"
            "  UNIQUE (run_id, seq))"
        )  # fmt: skip
    try:
        yield schema
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA {schema} CASCADE")


def bare_chain_start(schema: str, length: int) -> int:
    """A run of ``length`` bare hops, its first task sent; its id."""
    run_id = _run_insert(schema)
    bare_hop.apply_async(args=[schema, run_id, length - 1], queue=QUEUE)
    return run_id


def floor_chain_start(schema: str, length: int) -> int:
    """A run of ``length`` floor hops, the first queued and its task sent on commit; its id."""
    with transaction.atomic():
        run_id = _run_insert(schema)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {schema}.hop (run_id, seq, status) SELECT %s, s, CASE s WHEN 0 THEN 'queued'"
                " ELSE 'pending' END FROM generate_series(0, %s - 1) s RETURNING id, seq",
                [run_id, length],
            )
            first = next(hop_id for hop_id, seq in cursor.fetchall() if seq == 0)
        transaction.on_commit(lambda: _send_floor(schema, first))
    return run_id


def chain_ms_per_hop(schema: str, run_id: int, length: int, timeout_s: float = 30.0) -> float | None:
    """Milliseconds per hop, from the run's creation to its end; None if it did not end in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT created_at, finished_at FROM {schema}.run WHERE id = %s", [run_id])
            created, finished = cursor.fetchone()
        if finished is not None:
            return (finished - created).total_seconds() * 1000 / length
        time.sleep(POLL_S)
    return None


def _run_insert(schema: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {schema}.run (status) VALUES ('running') RETURNING id")
        return cursor.fetchone()[0]


def _run_end_sql(schema: str, run_id: int) -> str:
    return f"UPDATE {schema}.run SET status = 'succeeded', finished_at = clock_timestamp() WHERE id = {int(run_id)}"


def _send_floor(schema: str, hop_id: int) -> None:
    send_tasks(floor_hop, [([schema, hop_id], QUEUE)])


@shared_task(name="bench.bare_hop", **_TASK)
def bare_hop(schema: str, run_id: int, remaining: int) -> None:
    if remaining:
        bare_hop.apply_async(args=[schema, run_id, remaining - 1], queue=QUEUE)
        return
    with connection.cursor() as cursor:
        cursor.execute(_run_end_sql(schema, run_id))


@shared_task(name="bench.floor_hop", **_TASK)
def floor_hop(schema: str, hop_id: int) -> None:
    token = secrets.token_hex(16)
    with connection.cursor() as cursor:  # the claim: queued → running with a lease, or nothing
        cursor.execute(
            f"UPDATE {schema}.hop SET status = 'running', lease_token = %s, started_at = clock_timestamp(),"
            " lease_expires_at = clock_timestamp() + make_interval(secs => %s) WHERE id = %s AND status = 'queued'"
            " RETURNING run_id, seq",
            [token, LEASE_S, hop_id],
        )  # fmt: skip
        claimed = cursor.fetchone()
    if claimed is None:
        return
    run_id, seq = claimed
    with packed_transaction() as trip, connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status FROM {schema}.run WHERE id = %s FOR UPDATE;"
            f"SELECT id, seq, status, lease_token FROM {schema}.hop WHERE run_id = %s AND seq IN (%s, %s + 1)",
            [run_id, run_id, seq, seq],
        )
        cursor.nextset()
        rows = {row[1]: row for row in cursor.fetchall()}
        mine = rows.get(seq)
        if mine is None or mine[2] != "running" or mine[3] != token:
            return  # the lease ran out: someone else runs it now
        statements = [
            f"UPDATE {schema}.hop SET status = 'succeeded', lease_token = '', finished_at = clock_timestamp(),"
            f" output = '{{\"text\": \"ok\"}}' WHERE id = {int(mine[0])}"
        ]  # fmt: skip
        after = rows.get(seq + 1)
        if after is None:
            statements.append(_run_end_sql(schema, run_id))
        else:
            statements.append(f"UPDATE {schema}.hop SET status = 'queued' WHERE id = {int(after[0])}")
            transaction.on_commit(lambda next_id=int(after[0]): _send_floor(schema, next_id))
        trip.commit_with_next()
        cursor.execute(";".join(statements))
