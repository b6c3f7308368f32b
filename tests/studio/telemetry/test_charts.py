"""``studio.telemetry.charts``: the dashboard's series laid out as SVG geometry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from studio.telemetry.charts import (
    cost_chart,
    latency_chart,
    nice_ticks,
    review_chart,
    runs_chart,
)
from studio.telemetry.selectors import BUCKET_ORIGIN, Figures

HOUR = timedelta(hours=1)
START = BUCKET_ORIGIN + timedelta(days=9000)  # Aug 23 2025, midnight


def series(*figures: Figures) -> list:
    return [(START + HOUR * i, f) for i, f in enumerate(figures)]


def test_nice_ticks_cover_the_highest_value_in_round_steps():
    assert nice_ticks(6) == [0, 2, 4, 6]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(0.0123) == pytest.approx([0, 0.005, 0.01, 0.015])
    assert nice_ticks(1800) == [0, 500, 1000, 1500, 2000]
    assert nice_ticks(0) == [0, 1]


def test_runs_are_stacked_bars_as_tall_as_their_counts():
    chart = runs_chart(
        series(Figures(runs=4, succeeded=3, failed=1), Figures(), Figures(runs=2, succeeded=1, cancelled=1)),
        HOUR,
    )
    assert not chart.empty and [t.label for t in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    per_unit = (chart.bottom - chart.top) / 4
    first = [b for b in chart.bars if b.x == chart.bars[0].x]
    assert [(b.kind, b.height) for b in first] == [
        ("ok", round(3 * per_unit, 1)),
        ("bad", round(per_unit, 1)),
    ]
    assert first[0].y + first[0].height == pytest.approx(chart.bottom, abs=0.1)
    assert first[1].y + first[1].height == pytest.approx(first[0].y, abs=0.1)
    assert first[0].title == f"{START:%b} {START.day} 00:00\u201301:00 UTC: 4 runs, 3 succeeded, 1 failed"
    third = [b for b in chart.bars if b.x != first[0].x]
    assert [(b.kind, b.height) for b in third] == [("ok", round(per_unit, 1)), ("idle", round(per_unit, 1))]
    assert third[0].x > first[0].x + first[0].width  # the empty hour between keeps its place
    assert runs_chart(series(Figures(), Figures()), HOUR).empty


def test_latency_lines_break_where_a_bucket_has_no_run():
    chart = latency_chart(
        series(
            Figures(succeeded=2, latency_p50_ms=100.0, latency_p95_ms=400.0),
            Figures(),
            Figures(succeeded=1, latency_p50_ms=200.0, latency_p95_ms=200.0),
            Figures(succeeded=1, latency_p50_ms=300.0, latency_p95_ms=350.0),
        ),
        HOUR,
    )
    p50, p95 = chart.lines
    assert (p50.kind, len(p50.segments), len(p50.dots)) == ("p50", 2, 3)
    assert len(p50.segments[0].split()) == 1 and len(p50.segments[1].split()) == 2
    assert [t.label for t in chart.y_ticks][-1] == "400 ms"
    assert p95.dots[0].y == chart.top  # the highest P95 at the top of the scale
    assert "P50 100 ms, P95 400 ms over 2 runs" in p50.dots[0].title


def test_cost_and_review_charts():
    cost = cost_chart(
        series(
            Figures(actions=1000, tokens=5000, cost_usd=Decimal("0.5")),
            Figures(actions=10, cost_usd=Decimal("0")),
        ),
        HOUR,
    )
    (bar,) = cost.bars  # the bucket that cost nothing has none
    assert [t.label for t in cost.y_ticks] == ["0", "$0.200", "$0.400", "$0.600"]
    assert bar.height == pytest.approx((cost.bottom - cost.top) * 0.5 / 0.6, abs=0.1)
    assert "$0.5000 per 1,000 actions (1,000 actions, 5,000 tokens, $0.5000)" in bar.title

    review = review_chart(
        series(Figures(actions=10, reviews=1, review_wait_p50_ms=120_000.0), Figures(actions=4)), HOUR
    )
    (line,) = review.lines
    assert [t.label for t in review.y_ticks] == ["0", "2.5 %", "5 %", "7.5 %", "10 %"]
    assert line.dots[0].y == review.top and line.dots[1].y == review.bottom
    assert line.dots[0].title.endswith("10.0 % of 10 actions reviewed, wait P50 2 min 0 s")
    assert review_chart(series(Figures()), HOUR).empty


def test_time_labels_fall_on_whole_hours_and_days():
    day = runs_chart([(START + HOUR * i, Figures(runs=1, succeeded=1)) for i in range(25)], HOUR)
    assert [t.label for t in day.x_ticks] == ["Aug 23", "04:00", "08:00", "12:00", "16:00", "20:00", "Aug 24"]
    week = runs_chart(
        [(START + timedelta(hours=6) * i, Figures(runs=1, succeeded=1)) for i in range(29)],
        timedelta(hours=6),
    )
    assert len(week.x_ticks) == 8 and all(" " in t.label for t in week.x_ticks)  # one per day: "Aug 23"
