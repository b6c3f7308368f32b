"""Benchmarks for ``manage.py bench <name>``: figures next to a baseline measured in the same run.

A benchmark is a module with ``run(*, quick: bool, say) -> Report``; ``BENCHMARKS`` names
them, so adding one is a module and a line. It prints figures, it does not pass or fail a
build: absolute times move from run to run on shared machines, which is why every figure
that has a target is compared with a baseline taken in the same command (BENCHMARKS.md).

What benchmarks share lives here: the report and its table, percentiles, Celery workers
started as ``up`` starts them, and a throwaway tenant that takes everything with it.
"""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from studio.supervisor import web_argv, worker_argv

# name → module with ``run(*, quick, say) -> Report``
BENCHMARKS: dict[str, str] = {
    "engine": "studio.bench.engine",
    "inbox": "studio.bench.inbox",
    "memory": "studio.bench.memory",
    "editor": "studio.bench.editor",
}

Say = Callable[[str], None]
TIMES = "\N{MULTIPLICATION SIGN}"


class BenchError(Exception):
    """The benchmark could not run at all (workers did not start, …), explained in one line."""


def get_benchmark(name: str) -> Callable[..., Report]:
    return importlib.import_module(BENCHMARKS[name]).run


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """``op`` (``<=`` or ``>=``) ``limit``, on the row's ratio to its baseline or on its value."""

    op: str
    limit: float
    on: str = "ratio"
    unit: str = ""

    def met(self, value: float | None, ratio: float | None) -> bool | None:
        measured = ratio if self.on == "ratio" else value
        if measured is None:
            return None
        return measured <= self.limit if self.op == "<=" else measured >= self.limit

    @property
    def text(self) -> str:
        sign = "≤" if self.op == "<=" else "≥"
        return (
            f"{sign} {_number(self.limit)}{TIMES}"
            if self.on == "ratio"
            else f"{sign} {_number(self.limit)} {self.unit}"
        )


@dataclass
class Row:
    key: str
    label: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    targets: tuple[Target, ...] = ()
    error: str = ""  # why there is no value

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def ok(self) -> bool | None:
        results = [t.met(self.value, self.ratio) for t in self.targets]
        if not results:
            return None
        return self.value is not None and all(results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "figure": self.label, "value": self.value, "unit": self.unit,
            "baseline": self.baseline, "baseline_label": self.baseline_label,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "target": " and ".join(t.text for t in self.targets), "ok": self.ok, "error": self.error,
        }  # fmt: skip


@dataclass
class Report:
    name: str
    quick: bool
    date: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 0)
    database: str = field(default_factory=lambda: database_location())
    redis: str = field(default_factory=lambda: redis_location())
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # every number, by key, for --json
    notes: list[str] = field(default_factory=list)
    runs: int = 0
    failures: int = 0
    failure_details: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        if row.value is not None:
            self.figures[row.key] = round(row.value, 4)
        return row

    def fail(self, detail: str, count: int = 1) -> None:
        self.failures += count
        self.failure_details.append(detail)

    def as_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.name, "quick": self.quick, "date": self.date, "cpu_count": self.cpu_count,
            "database": self.database, "redis": self.redis, "figures": self.figures,
            "rows": [row.as_dict() for row in self.rows], "runs": self.runs, "failures": self.failures,
            "failure_details": self.failure_details, "notes": self.notes,
        }  # fmt: skip

    def table(self) -> str:
        header = ("figure", "value", "baseline", "ratio", "target", "")
        lines = [
            (
                row.label,
                f"{_number(row.value)} {row.unit}"
                if row.value is not None
                else f"— ({row.error or 'no value'})",
                row.baseline_label,
                f"{row.ratio:.2f}{TIMES}" if row.ratio is not None else "",
                " and ".join(t.text for t in row.targets),
                {True: "✓", False: "✗", None: ""}[row.ok],
            )
            for row in self.rows
        ]
        widths = [max(len(str(cells[i])) for cells in [header, *lines]) for i in range(len(header))]
        out = [
            f"bench {self.name}{' --quick' if self.quick else ''} · {self.date} · cpu_count {self.cpu_count}",
            f"PostgreSQL {self.database} · Redis {self.redis}",
            "",
            "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
            "  ".join("-" * w for w in widths),
        ]
        out += ["  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in lines]
        out += ["", f"runs made: {self.runs:,}; failures: {self.failures}"]
        out += [f"  failed: {detail}" for detail in self.failure_details]
        out += [f"note: {note}" for note in self.notes]
        return "\n".join(out)


def _number(value: float | None) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0 to 100), interpolated between the closest ranks."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def database_location() -> str:
    db = settings.DATABASES["default"]
    return f"{db.get('HOST') or 'local socket'}:{db.get('PORT') or 5432}/{db.get('NAME')}"


def redis_location() -> str:
    parts = urlsplit(settings.REDIS_URL)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or ''}"


# -- Celery workers, as `up` runs them ------------------------------------------------------------


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Warm shutdown (running tasks finish), then kill the worker's process group."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the worker and its pool children
            proc.wait()


def _stop_all(procs: list[subprocess.Popen]) -> None:
    try:
        for proc in procs:
            _stop(proc)
    finally:  # interrupted while waiting (a second Ctrl-C): no more waiting, none left behind
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@contextmanager
def celery_workers(
    *,
    say: Say,
    io_threads: int = 16,
    processes: int = 2,
    include: tuple[str, ...] = (),
    io_queues: tuple[str, ...] = (),
) -> Iterator[dict[str, str]]:
    """Start a prefork worker on the default queue and a thread-pool worker on the I/O queue, as
    ``up`` does, wait until both answer a ping, and stop them on the way out (errors and Ctrl-C
    included). ``include``: modules of benchmark-only tasks the workers import too; ``io_queues``:
    more queues for the I/O worker, where those tasks go (other workers on the I/O queue, the
    test suite's, would not know them). Yields ``{worker name: queue}``."""
    from studio.celery import app

    tag = f"bench-{secrets.token_hex(3)}"
    specs = [
        (f"{tag}@", settings.CELERY_TASK_DEFAULT_QUEUE, "prefork", processes),
        (f"{tag}-io@", settings.CELERY_IO_QUEUE, "threads", io_threads),
    ]
    also = {settings.CELERY_IO_QUEUE: io_queues}
    log_dir = Path(tempfile.mkdtemp(prefix="afs-bench-"))
    started: list[tuple[str, subprocess.Popen, Path]] = []
    clean = False
    try:
        for name, queue, pool, concurrency in specs:
            log_path = log_dir / f"{name.rstrip('@')}.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    [*worker_argv(name, queue=",".join([queue, *also.get(queue, ())]), pool=pool,
                                  concurrency=concurrency),
                     *(["--include", ",".join(include)] if include else [])],
                    cwd=settings.BASE_DIR, env=dict(os.environ), stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches only us; we stop them after our clean-up
                )  # fmt: skip
            started.append((name, proc, log_path))
            say(f"worker {name} started: {pool} pool, concurrency {concurrency}, queue {queue!r}")
        deadline = time.monotonic() + 60
        waiting = {name for name, _, _ in started}
        while waiting:
            for name, proc, log_path in started:
                if proc.poll() is not None:
                    raise BenchError(f"worker {name} exited with {proc.returncode}: {_tail(log_path)}")
            replies = {key for reply in app.control.ping(timeout=0.5) for key in reply}
            waiting = {name for name in waiting if not any(key.startswith(name) for key in replies)}
            if waiting and time.monotonic() > deadline:
                raise BenchError(f"worker(s) {', '.join(sorted(waiting))} did not answer a ping within 60 s")
        yield {name: queue for name, queue, _, _ in specs}
        clean = True
    except KeyboardInterrupt:
        clean = True  # asked to stop: nothing went wrong that the logs would explain
        raise
    finally:
        _stop_all([proc for _, proc, _ in reversed(started)])
        if clean:
            shutil.rmtree(log_dir, ignore_errors=True)
        elif started:
            say(f"worker logs kept in {log_dir}")


def other_consumers(ours: dict[str, str]) -> list[str]:
    """Workers we did not start that consume our queues (they would share the load we measure)."""
    from studio.celery import app

    found = app.control.inspect(timeout=1.0).active_queues() or {}
    queues = set(ours.values())
    return sorted(
        f"{name} ({', '.join(q['name'] for q in consumed if q['name'] in queues)})"
        for name, consumed in found.items()
        if not any(name.startswith(mine) for mine in ours) and any(q["name"] in queues for q in consumed)
    )


# -- a throwaway tenant ------------------------------------------------------------------------


@contextmanager
def throwaway_tenant(prefix: str = "bench") -> Iterator[Any]:
    """A tenant that exists for the benchmark only; deleting it takes its rows with it."""
    from flows.models import Run
    from studio.tenants.services import tenant_create, tenants_delete

    slug = f"{prefix}-{secrets.token_hex(4)}"
    tenant = tenant_create(name=f"Benchmark {slug}", slug=slug)
    try:
        yield tenant
    finally:
        # Runs first: a run protects the version it ran, which the flow's cascade would reach first.
        Run.objects.filter(tenant=tenant).delete()
        tenants_delete(tenant_ids=[tenant.pk])


class WebServer:
    """uvicorn serving the studio on a free port, as ``up`` runs it, for the length of a benchmark."""

    def __init__(self, say: Say, app: str = "studio.asgi:application") -> None:
        from studio.embedded import free_port

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.say = say
        self.log = Path(tempfile.mkstemp(prefix="afs-bench-web-", suffix=".log")[1])

    def __enter__(self) -> WebServer:
        argv = [*web_argv(host="127.0.0.1", port=self.port, app=self.app), "--log-level", "warning"]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(argv, cwd=settings.BASE_DIR, env=dict(os.environ), stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            self._wait_serving()
        except BaseException:  # not serving (or interrupted): no server left behind
            self.__exit__()
            raise
        self.say(f"web server (uvicorn) at {self.url}")
        return self

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(
                    f"the web server exited with {self.proc.returncode}: {self.log.read_text()[-500:]}"
                )
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise BenchError("the web server did not answer within 60 s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.unlink(missing_ok=True)
