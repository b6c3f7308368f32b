"""Run the studio's processes (web, worker, beat) as supervised children.

Children get their own session, so Ctrl-C reaches only the supervisor, which then
stops them in order (web first, so no new work arrives; the worker last, so running
tasks finish). A child that dies is restarted; one that keeps dying stops the
studio with the tail of its log.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TextIO

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
STOP_TIMEOUT_S = 30.0


def web_argv(*, host: str, port: int, app: str = "studio.asgi:application") -> list[str]:
    """The web server's command line (uvicorn: HTTP and websockets): as ``up`` runs it, and the
    benchmarks and the test suite theirs."""
    return [
        sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port), "--lifespan", "off",
        "--no-server-header", "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip


def worker_argv(name: str, *, queue: str, pool: str, concurrency: int) -> list[str]:
    """A Celery worker's command line: as ``up`` runs its workers, and the benchmarks and the
    test suite theirs."""
    return [
        sys.executable, "-m", "celery", "-A", "studio", "worker", "--loglevel", "INFO",
        "--concurrency", str(concurrency), "--pool", pool, "-Q", queue, "-n", name + "%h",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


@dataclass
class ChildSpec:
    name: str
    argv: list[str]


@dataclass
class Child:
    spec: ChildSpec
    proc: subprocess.Popen | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=40))
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    def __init__(self, specs: list[ChildSpec], *, env: dict[str, str], out: TextIO = sys.stdout) -> None:
        self.children = [Child(spec) for spec in specs]
        self.env = env
        self.out = out
        self.stopping = threading.Event()
        self._print_lock = threading.Lock()
        self.width = max(len(spec.name) for spec in specs)

    def say(self, name: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"{name.ljust(self.width)} | {line}\n")
            self.out.flush()

    def _start(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.spec.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(child, child.proc), daemon=True).start()

    def _pump(self, child: Child, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            child.tail.append(line)
            self.say(child.spec.name, line)

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def install_signal_handlers(self) -> None:
        def handle(signum, frame):
            if self.stopping.is_set():
                return
            self.say("studio", f"received {signal.Signals(signum).name}, stopping…")
            self.stopping.set()

        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGTERM, handle)

    def watch(self) -> int:
        """Restart children that die until asked to stop; returns the exit status."""
        while not self.stopping.wait(0.5):
            for child in self.children:
                code = child.proc.poll() if child.proc else None
                if code is None:
                    continue
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S]
                if len(child.restarts) >= MAX_RESTARTS:
                    self.say(
                        "studio",
                        f"{child.spec.name} died {MAX_RESTARTS + 1} times within "
                        f"{RESTART_WINDOW_S:.0f} s (last exit status {code}); giving up. Its last lines:",
                    )
                    for line in list(child.tail)[-15:]:
                        self.say(child.spec.name, line)
                    self.stop_all()
                    return 1
                child.restarts.append(now)
                self.say(
                    "studio",
                    f"{child.spec.name} exited with status {code}; restarting it "
                    f"({len(child.restarts)}/{MAX_RESTARTS} within {RESTART_WINDOW_S:.0f} s)",
                )
                self._start(child)
        self.stop_all()
        return 0

    def stop_all(self) -> None:
        for child in self.children:  # in order: web, beat, worker
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.say(
                    "studio", f"{child.spec.name} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it"
                )
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.say("studio", f"{child.spec.name} stopped")

    def all_running(self) -> bool:
        return all(child.proc is not None and child.proc.poll() is None for child in self.children)
