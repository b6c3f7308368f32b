"""`manage.py bench inbox --quick --json`: every figure is there and nothing is lost after catch-up.

Figures only: nothing here asserts on speed (that is what the printed targets are for)."""

from __future__ import annotations

import pytest

from tests.conftest import run_bench

FIGURES = ["raw_p50_ms", "raw_p95_ms", "inbox_p50_ms", "inbox_p95_ms"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_bench_inbox_reports_latencies_and_loses_nothing():
    from django.contrib.auth import get_user_model

    from studio.tenants.models import Tenant

    report = run_bench("inbox", timeout=240)
    assert report["benchmark"] == "inbox" and report["failures"] == 0, report["failure_details"]
    missing = [key for key in FIGURES if key not in report["figures"]]
    assert not missing, f"figures missing: {missing}"
    assert all(report["figures"][key] > 0 for key in FIGURES), report["figures"]
    assert report["figures"]["inbox_lost"] == 0 and report["figures"]["raw_lost"] == 0
    assert not Tenant.objects.exists() and not get_user_model().objects.exists()  # it cleaned up
