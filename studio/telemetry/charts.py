"""The dashboard's charts: the series of a ``Summary`` laid out as SVG geometry (bars, lines,
axes, a title per mark for its tooltip), drawn by ``templates/studio/_chart.html``. Plain
numbers in, coordinates out: no JavaScript, nothing to load, the page prints as it shows.

Four charts, one per question the dashboard answers: how many runs and how many failed; how
long runs took (P50 and P95); what 1,000 actions cost; how much went through people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from studio.telemetry.selectors import BUCKET_ORIGIN, Figures, Summary
from studio.templatetags.figures import duration_ms, number, percent, usd

WIDTH, HEIGHT = 560, 190
LEFT, RIGHT, TOP, BOTTOM = 56, 10, 12, 24  # the plot's margins: y labels left, x labels below
X_LABELS = 8  # at most this many time labels under a chart
DASH = "\u2013"


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # a CSS class: ok, bad, idle, cost
    title: str


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Line:
    kind: str  # p50, p95, share
    segments: list[str]  # SVG ``points`` of each unbroken run of values (a bucket without one breaks it)
    dots: list[Dot]


@dataclass(frozen=True)
class Tick:
    at: float  # y, or x for time labels
    label: str


@dataclass
class Chart:
    key: str
    title: str
    description: str  # what the chart shows, for people who cannot see it
    legend: list[tuple[str, str]]  # (kind, label)
    y_ticks: list[Tick] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    bars: list[Bar] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    empty: bool = True  # no value in any bucket: the chart says so instead of drawing axes

    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


def nice_ticks(highest: float, count: int = 4) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 times a power of ten) up to at least ``highest``."""
    if highest <= 0:
        return [0.0, 1.0]
    rough = highest / count
    power = 10 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= rough)
    return [step * i for i in range(math.ceil(highest / step - 1e-9) + 1)]


def dashboard_charts(summary: Summary) -> list[Chart]:
    series, bucket = summary.series, summary.bucket
    return [
        runs_chart(series, bucket),
        latency_chart(series, bucket),
        cost_chart(series, bucket),
        review_chart(series, bucket),
    ]


def runs_chart(series: Sequence[tuple[datetime, Figures]], bucket: timedelta) -> Chart:
    chart = Chart(
        "runs", "Runs", "Runs started per bucket of time, stacked by how they ended.",
        [("ok", "succeeded"), ("bad", "failed"), ("idle", "cancelled or going")],
    )  # fmt: skip
    highest = max((f.runs for _, f in series), default=0)
    if not highest:
        return chart
    scale = _frame(chart, series, bucket, nice_ticks(highest), lambda v: number(v))
    for i, (start, f) in enumerate(series):
        x, width = _slot(chart, i, len(series))
        base = chart.bottom
        title = f"{_span(start, bucket)}: {f.runs:,} runs, {f.succeeded:,} succeeded, {f.failed:,} failed" + (
            f", {f.cancelled + f.active:,} cancelled or going" if f.cancelled + f.active else ""
        )
        for kind, value in (("ok", f.succeeded), ("bad", f.failed), ("idle", f.cancelled + f.active)):
            if value:
                height = value * scale
                base -= height
                chart.bars.append(Bar(x, round(base, 1), width, round(height, 1), kind, title))
    return chart


def latency_chart(series: Sequence[tuple[datetime, Figures]], bucket: timedelta) -> Chart:
    chart = Chart(
        "latency", "Run latency", "P50 and P95 of the wall time of the runs that succeeded, per bucket of time.",
        [("p50", "P50"), ("p95", "P95")],
    )  # fmt: skip
    highest = max((f.latency_p95_ms or 0 for _, f in series), default=0)
    if not highest:
        return chart
    scale = _frame(chart, series, bucket, nice_ticks(highest), duration_ms)

    def describe(f: Figures) -> str:
        return f"P50 {duration_ms(f.latency_p50_ms)}, P95 {duration_ms(f.latency_p95_ms)} over {f.succeeded:,} runs"

    for kind, value_of in (("p50", lambda f: f.latency_p50_ms), ("p95", lambda f: f.latency_p95_ms)):
        chart.lines.append(_line(chart, series, bucket, kind, value_of, scale, describe))
    return chart


def cost_chart(series: Sequence[tuple[datetime, Figures]], bucket: timedelta) -> Chart:
    chart = Chart(
        "cost", "Cost per 1,000 actions", "Model cost per 1,000 actions (steps that ran), per bucket of time.",
        [("cost", "US dollars per 1,000 actions")],
    )  # fmt: skip
    highest = float(max((f.cost_per_1000_actions or 0 for _, f in series), default=0))
    if not highest:
        return chart
    scale = _frame(chart, series, bucket, nice_ticks(highest), lambda v: usd(v, _money_places(highest)))
    for i, (start, f) in enumerate(series):
        if f.cost_per_1000_actions:
            x, width = _slot(chart, i, len(series))
            height = float(f.cost_per_1000_actions) * scale
            title = (
                f"{_span(start, bucket)}: {usd(f.cost_per_1000_actions)} per 1,000 actions "
                f"({f.actions:,} actions, {f.tokens:,} tokens, {usd(f.cost_usd)})"
            )
            chart.bars.append(Bar(x, round(chart.bottom - height, 1), width, round(height, 1), "cost", title))
    return chart


def review_chart(series: Sequence[tuple[datetime, Figures]], bucket: timedelta) -> Chart:
    chart = Chart(
        "review", "Human review", "Share of actions that went through a person's review, per bucket of time.",
        [("share", "reviewed share of actions")],
    )  # fmt: skip
    highest = max((f.review_share or 0 for _, f in series), default=0)
    if not any(f.actions for _, f in series):
        return chart
    ticks = nice_ticks(max(highest, 0.05))
    scale = _frame(chart, series, bucket, ticks, lambda v: f"{v * 100:g} %")

    def describe(f: Figures) -> str:
        wait = f", wait P50 {duration_ms(f.review_wait_p50_ms)}" if f.reviews else ""
        return f"{percent(f.review_share)} of {f.actions:,} actions reviewed{wait}"

    chart.lines.append(_line(chart, series, bucket, "share", lambda f: f.review_share, scale, describe))
    return chart


# -- layout -------------------------------------------------------------------------------


def _frame(chart: Chart, series, bucket: timedelta, ticks: list[float], label: Callable) -> float:
    """Axes for ``ticks`` and the series' times; returns pixels per unit of value."""
    chart.empty = False
    scale = (chart.bottom - chart.top) / ticks[-1]
    chart.y_ticks = [Tick(round(chart.bottom - t * scale, 1), label(t) if t else "0") for t in ticks]
    for i in _labelled(series, bucket):
        x, width = _slot(chart, i, len(series))
        chart.x_ticks.append(Tick(round(x + width / 2, 1), _time_label(series[i][0], bucket)))
    return scale


# Spans between two time labels, the first that gives at most ``X_LABELS``: labels fall on whole
# hours, days or weeks (since ``BUCKET_ORIGIN``, a Monday at midnight UTC).
LABEL_SPANS = tuple(timedelta(hours=h) for h in (1, 2, 3, 4, 6, 12, 24, 48, 7 * 24, 14 * 24, 28 * 24))


def _labelled(series, bucket: timedelta) -> list[int]:
    """The buckets that get a time label."""
    span = len(series) * bucket
    step = next((s for s in LABEL_SPANS if s >= bucket and span / s <= X_LABELS), None)
    if step is None:  # long buckets: every n-th
        every = math.ceil(len(series) / X_LABELS)
        return list(range(0, len(series), every))
    return [i for i, (start, _) in enumerate(series) if (start - BUCKET_ORIGIN) % step == timedelta(0)]


def _slot(chart: Chart, index: int, count: int) -> tuple[float, float]:
    """The x and width of the bar of bucket ``index`` of ``count``."""
    slot = (chart.right - chart.left) / count
    width = max(1.0, slot * 0.72)
    return round(chart.left + index * slot + (slot - width) / 2, 1), round(width, 1)


def _line(chart, series, bucket, kind: str, value_of: Callable, scale: float, describe: Callable) -> Line:
    segments, dots, points = [], [], []
    for i, (start, f) in enumerate(series):
        value = value_of(f)
        if value is None:
            if points:
                segments.append(" ".join(points))
                points = []
            continue
        x, width = _slot(chart, i, len(series))
        cx, cy = round(x + width / 2, 1), round(chart.bottom - float(value) * scale, 1)
        points.append(f"{cx},{cy}")
        dots.append(Dot(cx, cy, f"{_span(start, bucket)}: {describe(f)}"))
    if points:
        segments.append(" ".join(points))
    return Line(kind, segments, dots)


def _time_label(start: datetime, bucket: timedelta) -> str:
    if bucket >= timedelta(days=1) or (start.hour == 0 and start.minute == 0):
        return f"{start:%b} {start.day}"
    return f"{start:%H:%M}"


def _span(start: datetime, bucket: timedelta) -> str:
    """``Dec 8 01:00-02:00 UTC``, ``Dec 8`` or ``Dec 1-Dec 7`` (with en dashes): a bucket, for a tooltip."""
    end = start + bucket
    if bucket < timedelta(days=1):
        return f"{start:%b} {start.day} {start:%H:%M}{DASH}{end:%H:%M} UTC"
    if bucket == timedelta(days=1):
        return f"{start:%b} {start.day}"
    last = end - timedelta(days=1)
    return f"{start:%b} {start.day}{DASH}{last:%b} {last.day}"


def _money_places(highest: float) -> int:
    """Enough decimals for the axis to tell its ticks apart."""
    return 2 if highest >= 1 else min(6, 2 + math.ceil(-math.log10(highest)))
