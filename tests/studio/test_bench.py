"""`manage.py bench engine --quick --json`: every figure is there and every run it made succeeded.

Figures only: nothing here asserts on speed (that is what the printed targets are for)."""

from __future__ import annotations

import pytest

from tests.conftest import run_bench

FIGURES = [
    "celery_rtt_p50_ms", "celery_rtt_p95_ms", "celery_tasks_per_s", "celery_io_rtt_p50_ms", "celery_hop_ms",
    "durable_floor_hop_ms", "durable_floor_ratio_to_celery_p50",
    "chain_inline_ms_per_step", "chain_inline_steps_per_s", "chain_inline_ratio_to_langgraph",
    "chain_worker_ms_per_step", "chain_worker_steps_per_s", "chain_worker_ratio_to_celery_p50",
    "chain_worker_ratio_to_floor",
    "fanout_wall_ms", "fanout_steps_per_s",
    "small_runs", "small_runs_per_s", "small_runs_ratio_to_langgraph", "small_run_p50_ms", "small_run_p95_ms",
    "api_wait_p50_ms", "api_wait_p95_ms", "api_runs_per_s", "api_noop_p95_ms", "api_wait_ratio_to_floor",
]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_bench_engine_reports_every_figure_and_its_runs_all_succeed():
    from studio.tenants.models import Tenant

    report = run_bench("engine", timeout=120)

    assert report["benchmark"] == "engine" and report["quick"] is True
    assert report["cpu_count"] >= 1 and report["date"]
    assert "@" not in report["database"] + report["redis"]  # hosts only, never credentials
    missing = [key for key in FIGURES if key not in report["figures"]]
    assert not missing, f"figures missing: {missing}; failures: {report['failure_details']}"
    assert all(report["figures"][key] > 0 for key in FIGURES), report["figures"]
    assert report["runs"] > 0
    assert report["failures"] == 0, report["failure_details"]
    # The throwaway tenant went with everything it made.
    assert not Tenant.objects.filter(slug__startswith="bench-").exists()
