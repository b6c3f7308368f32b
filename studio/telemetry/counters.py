"""Prometheus counters of steps and runs, kept in Redis as steps end, served at ``/metrics``.

Counting at the scrape over the runs table would cost a scan that grows with it. Instead the
engine tells us (``flows.engine.on_steps_recorded``) after each transaction that ended steps or
a run, and we add to one Redis hash with commands whose answers nobody waits for: a few
microseconds on the hot path. All processes on all machines add to the same hash, so any web
process serves the whole picture.

Counters are at most once: increments of a worker that dies between its commit and this call
are lost, and counters restart from zero if Redis loses its data (Prometheus' ``rate()`` takes
resets in its stride). The dashboard's figures, read from PostgreSQL, stay the exact ones.

Labels stay few: tenant (its slug), node type, status. Latency is a histogram per node type.
"""

from __future__ import annotations

import math
from collections import defaultdict

from flows.models import RUN_FINISHED, Run, StepRun
from studio.realtime import redis_client, send_unanswered

KEY = "studio:metrics"
# Step latency buckets, seconds: model and HTTP calls take from milliseconds to a minute.
BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
SEP = "\x1f"  # between a counter's name and its label values, in a hash field

# name: (type, labels, help). The histogram's samples carry "le" as well.
METRICS = {
    "studio_steps_total": ("counter", ("tenant", "node_type", "status"),
                           "Steps that ended, by tenant, node type and status."),
    "studio_runs_total": ("counter", ("tenant", "status"), "Runs that ended, by tenant and status."),
    "studio_model_tokens_total": ("counter", ("tenant", "direction"),
                                  "Model tokens spent by steps, by tenant and direction (in, out)."),
    "studio_model_cost_usd_total": ("counter", ("tenant",), "Model cost of steps in US dollars, by tenant."),
    "studio_step_duration_seconds": ("histogram", ("node_type",), "Latency of steps that ran, by node type."),
    "studio_reviews_waiting": ("gauge", ("tenant",),
                               "Reviews waiting for a person (open, claimed or escalated), by tenant."),
}  # fmt: skip
COUNTERS = [name for name, (kind, _, _) in METRICS.items() if kind == "counter"]


def _field(name: str, *values: object) -> str:
    return SEP.join([name, *map(str, values)])


def steps_recorded(run: Run, steps: list[StepRun]) -> None:
    """Add what this transaction ended to the counters (``on_steps_recorded`` hook)."""
    ints: dict[str, int] = defaultdict(int)
    floats: dict[str, float] = defaultdict(float)
    tenant = run.tenant_id
    for step in steps:
        ints[_field("studio_steps_total", tenant, step.node_type, step.status)] += 1
        if step.tokens_in:
            ints[_field("studio_model_tokens_total", tenant, "in")] += step.tokens_in
        if step.tokens_out:
            ints[_field("studio_model_tokens_total", tenant, "out")] += step.tokens_out
        if step.cost_usd:
            floats[_field("studio_model_cost_usd_total", tenant)] += float(step.cost_usd)
        if step.latency_ms is not None:
            seconds = float(step.latency_ms) / 1000
            bucket = next((b for b in BUCKETS_S if seconds <= b), math.inf)
            ints[_field("studio_step_duration_seconds_bucket", step.node_type, bucket)] += 1
            ints[_field("studio_step_duration_seconds_count", step.node_type)] += 1
            floats[_field("studio_step_duration_seconds_sum", step.node_type)] += seconds
    if run.status in RUN_FINISHED:
        ints[_field("studio_runs_total", tenant, run.status)] += 1
    commands = [("HINCRBY", KEY, f, n) for f, n in ints.items()]
    commands += [("HINCRBYFLOAT", KEY, f, repr(x)) for f, x in floats.items()]
    if commands:
        send_unanswered(*commands)


def exposition(tenant_slugs: dict[int, str], reviews_waiting: dict[int, int]) -> str:
    """The counters in Prometheus' text format (0.0.4), and the review backlog read at the scrape
    (``reviews_waiting``: tenant id → count). Tenant ids become slugs; a tenant deleted since is
    left out."""
    raw = redis_client().hgetall(KEY)
    series: dict[str, list[tuple[tuple[str, ...], float]]] = defaultdict(list)
    for field, value in raw.items():
        name, *values = field.decode().split(SEP)
        series[name].append((tuple(values), float(value)))
    lines: list[str] = []
    for name in COUNTERS:
        _head(lines, name)
        for values, number in sorted(series.get(name, [])):
            slug = tenant_slugs.get(int(values[0]))
            if slug is not None:
                lines.append(_sample(name, METRICS[name][1], (slug, *values[1:]), number))
    _histogram(lines, series)
    name = "studio_reviews_waiting"
    _head(lines, name)
    for tenant_id, slug in sorted(tenant_slugs.items(), key=lambda item: item[1]):
        lines.append(_sample(name, METRICS[name][1], (slug,), reviews_waiting.get(tenant_id, 0)))
    return "\n".join(lines) + "\n"


def _histogram(lines: list[str], series: dict) -> None:
    name = "studio_step_duration_seconds"
    _head(lines, name)
    buckets: dict[str, dict[float, float]] = defaultdict(dict)
    for (node_type, le), count in series.get(f"{name}_bucket", []):
        buckets[node_type][float(le)] = count
    counts = dict((values[0], n) for values, n in series.get(f"{name}_count", []))
    sums = dict((values[0], n) for values, n in series.get(f"{name}_sum", []))
    for node_type in sorted(counts):
        cumulative = 0.0
        for bound in (*BUCKETS_S, math.inf):
            cumulative += buckets[node_type].get(bound, 0.0)
            le = "+Inf" if bound == math.inf else repr(bound)
            lines.append(_sample(f"{name}_bucket", ("node_type", "le"), (node_type, le), cumulative))
        lines.append(_sample(f"{name}_sum", ("node_type",), (node_type,), sums.get(node_type, 0.0)))
        lines.append(_sample(f"{name}_count", ("node_type",), (node_type,), counts[node_type]))


def _head(lines: list[str], name: str) -> None:
    kind, _, text = METRICS[name]
    lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def _sample(name: str, labels: tuple[str, ...], values: tuple[str, ...], number: float) -> str:
    pairs = ",".join(f'{label}="{_escape(value)}"' for label, value in zip(labels, values, strict=True))
    return f"{name}{{{pairs}}} {_number(number)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(number: float) -> str:
    return str(int(number)) if number == int(number) else repr(number)
