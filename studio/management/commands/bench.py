from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from studio.bench import BENCHMARKS, BenchError, get_benchmark
from studio.heap import freeze_startup_objects


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM cleans up like Ctrl-C: workers stopped, the benchmark tenant deleted."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Command(BaseCommand):
    help = (
        "Measure the studio next to baselines taken in the same run (BENCHMARKS.md) and print the "
        "figures. Starts its own workers and a throwaway tenant; leaves the database as it was."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("benchmark", choices=sorted(BENCHMARKS), help="which benchmark to run")
        parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds, not minutes)")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="print one JSON object instead of the table"
        )

    def handle(self, *args, benchmark: str, quick: bool, as_json: bool, **options) -> None:
        # With --json, stdout carries the JSON object only; progress goes to stderr.
        progress = self.stderr if as_json else self.stdout

        def say(line: str) -> None:
            progress.write(f"bench | {line}")
            progress.flush()

        self._migrate(say)
        measure = get_benchmark(benchmark)
        freeze_startup_objects()  # a long-lived process too: its clients' pauses would count
        try:
            with sigterm_as_interrupt():
                report = measure(quick=quick, say=say)
        except BenchError as exc:
            raise CommandError(str(exc)) from None
        except KeyboardInterrupt:
            say("interrupted: workers stopped, benchmark tenant deleted")
            sys.exit(130)
        if as_json:
            self.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False))
        else:
            self.stdout.write(report.table())
        if report.failures:
            raise CommandError(f"{report.failures} run(s) failed; see 'failed' above")

    def _migrate(self, say) -> None:
        """A fresh data dir has no tables yet; a migrated database is left untouched."""
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            call_command("migrate", interactive=False, verbosity=0)
            say(f"database migrated ({len(plan)} migrations applied)")
