"""`manage.py bench memory --quick --json`: every figure is there, recall holds, and the scratch
schema and tenants are gone afterwards. No assertion on speed (the printed targets are for that)."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.conftest import run_bench

PHASES = ["largest", "smallest", "after_purge_largest", "after_purge_smallest"]
PER_PHASE = ["raw_p50_ms", "raw_p95_ms", "raw_recall", "service_p95_ms", "service_recall", "api_p95_ms",
             "api_recall", "hnsw_p95_ms", "hnsw_recall", "hnsw_off_results", "floor_p50_ms", "floor_p95_ms",
             "api_above_floor_p95_ms"]  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_bench_memory_reports_every_figure_and_cleans_up():
    from studio.tenants.models import Tenant

    report = run_bench("memory", timeout=240)
    assert report["benchmark"] == "memory" and report["quick"] is True and report["failures"] == 0
    figures = report["figures"]
    wanted = ["hnsw_build_s", "purge_items"] + [f"{phase}_{name}" for phase in PHASES for name in PER_PHASE]
    assert not [key for key in wanted if key not in figures], figures
    assert figures["purge_items"] == 300  # 30 % of the largest tenant's 999 items
    assert all(figures[f"{phase}_service_recall"] >= 0.95 for phase in PHASES), figures

    assert not Tenant.objects.filter(slug__startswith="bench-mem-").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'bench_memory_%%'")
        assert cursor.fetchone()[0] == 0
