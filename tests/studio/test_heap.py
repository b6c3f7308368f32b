"""Long-lived processes freeze what start-up loaded, so the cycle collector's full passes skip
it. Each check runs in a process of its own: freezing is for the whole interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.conf import settings


def python(code: str) -> list[str]:
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=settings.BASE_DIR,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-2:]


def test_freezing_leaves_the_collector_only_what_comes_after():
    frozen, tracked = python(
        "import gc; from studio.heap import freeze_startup_objects; "
        "assert gc.get_freeze_count() == 0; freeze_startup_objects(); "
        "after = [object() for _ in range(10)], [[] for _ in range(10)]; "
        "print(gc.get_freeze_count(), len(gc.get_objects()))"
    )
    assert int(frozen) > 50_000  # Django, DRF, Celery and the node types, at least
    assert int(tracked) < 1_000


def test_the_web_server_freezes_once_its_application_is_built():
    frozen, tracked = python(
        "import gc; assert gc.get_freeze_count() == 0; import studio.asgi; "
        "from flows import api; "  # a view module: imported by the application's URLs, so frozen
        "print(gc.get_freeze_count(), len(gc.get_objects()))"
    )
    assert int(frozen) > 50_000
    assert int(tracked) < 1_000


@pytest.mark.parametrize("signal", ["worker_ready", "worker_process_init"])
def test_workers_freeze_when_their_start_up_is_over(signal):
    """A thread-pool worker runs its tasks in its main process, ready once it consumes; a
    prefork child once it is initialised. The signals as Celery sends them."""
    frozen, _ = python(
        "import gc; from celery import signals; from studio.celery import app; "
        f"assert gc.get_freeze_count() == 0; signals.{signal}.send(sender=None); "
        "print(gc.get_freeze_count(), 0)"
    )
    assert int(frozen) > 50_000
