"""``bench engine``: the flow engine next to bare Celery, on the same broker and the same workers.

(a) the baselines, measured in this run: bare Celery no-op round trips and a burst; a chain of
    no-ops each sending the next from the worker, as a step sends its successor; and a chain of
    durable floor hops, the least a step costs that keeps the execution contract (``hops``);
(b) a 200-node chain (trigger → 198 → output), all inline steps, then all worker steps;
(c) a 1→200 fan-out of worker steps joined by one inline step;
(d) three-node inline runs started from 16 client threads at once for a few seconds;
(e) a small flow with one worker step (trigger → scripted LLM → output) through the HTTP API of a
    uvicorn server, ``POST …/runs/?wait=``: latency one request at a time, and runs/s from 16
    clients, next to Langflow's run API (constants from BENCHMARKS.md: not installed here).

The big flows run once to warm the workers' caches, then ``repeats`` times with the Celery
round trips taken in between, so both sides see the same moment of a shared machine.
LangGraph is not installed here: its figures are constants measured on these machines
(BENCHMARKS.md), and the output says so.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connections
from django.db.models import Count

from flows import selectors, services
from flows.graph import edge_doc as edge
from flows.graph import graph_doc as graph
from flows.graph import node_doc as node
from flows.models import RUN_FINISHED, Flow, Run, RunStatus
from studio.bench import (
    Report,
    Row,
    Say,
    Target,
    WebServer,
    celery_workers,
    hops,
    other_consumers,
    percentile,
    throwaway_tenant,
)

# BENCHMARKS.md, measured on these machines: LangGraph 1.2 with its PostgreSQL checkpointer, and
# bare Celery (Redis broker, prefork -c 2) as it was then, for comparing this machine today.
LANGFLOW_API_P95_MS = 50.0  # 2-node flow through Langflow's run API, sequential
LANGFLOW_API_RUNS_PER_S = 17.9  # the same at 16 clients
LANGGRAPH_STEP_MS = 1.60
LANGGRAPH_RUNS_PER_S = 154.0
REFERENCE_CELERY_P50_MS = 1.57
REFERENCE_CELERY_P95_MS = 2.44
REFERENCE_CELERY_PER_S = 879.0

WORKER_STEP_TARGET = Target("<=", 2.0)  # a worker step: ≤ 2 times the bare round trip
INLINE_STEP_TARGET = Target("<=", 1.0)  # an inline step: ≤ LangGraph's durable step
# three-node runs: ≥ 1.6 times LangGraph's, and ≥ 250 runs/s on 2 cores
SMALL_RUNS_TARGETS = (Target(">=", 1.6), Target(">=", 250.0, on="value", unit="runs/s"))
API_P95_TARGET = Target("<=", 15.0, on="value", unit="ms")  # small flow through our API, worker included

RUN_TIMEOUT_S = 300.0
DEEP_RECURSION_LIMIT = 10_000


@dataclass(frozen=True)
class Sizes:
    pings: int  # sequential round trips per queue, over all repeats
    burst: int  # no-ops fired at once, then awaited
    chain: int  # nodes of the linear flows, trigger and output included
    fanout: int  # parallel branches
    repeats: int  # measured runs of each big flow, after one warm-up run
    clients: int  # threads starting small runs
    small_runs_s: float  # how long they keep starting them
    api_requests: int  # sequential API runs (e)


FULL = Sizes(
    pings=600, burst=2000, chain=200, fanout=200, repeats=3, clients=16, small_runs_s=5.0, api_requests=300
)
QUICK = Sizes(
    pings=60, burst=200, chain=40, fanout=40, repeats=1, clients=16, small_runs_s=1.5, api_requests=40
)


# -- graphs --------------------------------------------------------------------------------------


def scripted_llm(node_id: str, prompt: str = "next step") -> dict:
    # A fixed answer and no delay: the step costs what the engine and the queue cost.
    return node(node_id, "llm", provider="scripted", model="claude-haiku-4-5", prompt=prompt,
                script={"default": "ok"})  # fmt: skip


def trigger() -> dict:
    return node(
        "trigger", "trigger", input_schema={"type": "object", "properties": {"n": {"type": "integer"}}}
    )


def chain_graph(length: int, *, worker: bool) -> dict:
    """trigger → (length - 2) transforms or scripted LLM steps → output."""
    middle = [f"s{i:03d}" for i in range(length - 2)]
    ids = ["trigger", *middle, "output"]
    nodes = [trigger()]
    for previous, node_id in zip(ids, middle, strict=False):
        if worker:
            nodes.append(scripted_llm(node_id))
        else:  # each step reads the one before it, as real flows pass data along
            nodes.append(node(node_id, "transform", mapping={"n": f"{{{{ nodes.{previous}.output.n }}}}"}))
    nodes.append(node("output", "output"))
    return graph(nodes, [edge(a, b) for a, b in itertools.pairwise(ids)])


def fanout_graph(width: int) -> dict:
    """trigger → width scripted LLM steps in parallel → one transform join (reads two) → output."""
    branches = [f"b{i:03d}" for i in range(width)]
    join = node("join", "transform", mapping={"first": f"{{{{ nodes.{branches[0]}.output.text }}}}",
                                              "last": f"{{{{ nodes.{branches[-1]}.output.text }}}}"})  # fmt: skip
    nodes = [trigger(), *(scripted_llm(b) for b in branches), join, node("output", "output")]
    edges = [edge("trigger", b) for b in branches] + [edge(b, "join") for b in branches]
    return graph(nodes, [*edges, edge("join", "output")])


def api_graph() -> dict:
    """The API's small flow: trigger → one scripted model step (a worker step) → output."""
    nodes = [trigger(), scripted_llm("ask", prompt="{{ input.n }}"), node("output", "output")]
    return graph(nodes, [edge("trigger", "ask"), edge("ask", "output")])


def small_graph() -> dict:
    """The three-node run: trigger → transform → output, all inline."""
    nodes = [trigger(), node("shape", "transform", mapping={"n": "{{ input.n }}"}), node("output", "output")]
    return graph(nodes, [edge("trigger", "shape"), edge("shape", "output")])


# -- the benchmark -----------------------------------------------------------------------------


@contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _recursion_cycle(exc: RecursionError) -> list[str]:
    """The engine functions that repeat at the bottom of a RecursionError's traceback."""
    names = [
        f.name for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith("flows/engine.py")
    ]
    for skip in range(4):  # the deepest frames may be a helper that overflowed, not the cycle
        tail = names[: len(names) - skip]
        for size in range(1, 9):
            if (
                len(tail) >= 3 * size
                and tail[-size:] == tail[-2 * size : -size] == tail[-3 * size : -2 * size]
            ):
                return tail[-size:]
    return []


def _wall_ms(run: Run) -> float:
    return (run.finished_at - run.created_at).total_seconds() * 1000


class EngineBench:
    def __init__(self, *, tenant, sizes: Sizes, report: Report, say: Say, schema: str = "") -> None:
        self.tenant = tenant
        self.schema = schema  # ``hops.hop_schema``: where the baseline chains keep their rows
        self.sizes = sizes
        self.report = report
        self.say = say
        self.deep_inline = False  # set when the inline chain needed a raised recursion limit

    # -- helpers ---------------------------------------------------------------------------

    def publish(self, name: str, doc: dict) -> Flow:
        flow = services.flow_create(tenant=self.tenant, name=name, graph=doc)
        services.flow_publish(flow=flow)
        return flow

    def start(self, flow: Flow, n: int = 1) -> Run:
        run, _ = services.run_request(flow=flow, version=None, inputs={"n": n}, trigger="api")
        return run

    def finish(self, run: Run, what: str) -> Run | None:
        """The run once it ended, or None (and a failure detail) when it did not succeed.

        Waits by reading the run's status every ``hops.POLL_S``, as the baselines' chains are
        waited for: a subscriber to the run's live events would wake for every event of every
        step and take its share of the two cores the run is measured on, which the baselines'
        waits do not (about 5% of a worker step, alternated on a 200-node chain)."""
        deadline = time.monotonic() + RUN_TIMEOUT_S
        status = run.status
        while status not in RUN_FINISHED and time.monotonic() < deadline:
            time.sleep(hops.POLL_S)
            status = selectors.run_status(run.pk)  # one short statement, as the baselines' waits read
        run.refresh_from_db()
        if run.status != RunStatus.SUCCEEDED:
            # Counted with every other run at the end; here only the why.
            self.report.fail(f"{what}: run {run.pk} {run.status}: {(run.error or {}).get('message', '')}", 0)
            return None
        return run

    def start_inline_chain(self, flow: Flow) -> Run | None:
        if self.deep_inline:
            with recursion_limit(DEEP_RECURSION_LIMIT):
                return self.start(flow)
        try:
            return self.start(flow)
        except RecursionError as exc:
            self.report.fail(f"inline chain of {self.sizes.chain} nodes: RecursionError in the engine")
            cycle = _recursion_cycle(exc)
            self.report.notes.append(
                f"a chain of {self.sizes.chain} inline steps overflows Python's recursion limit "
                f"({sys.getrecursionlimit():,}): each inline step runs one call deeper than the one before"
                + (f" ({' → '.join(cycle)} → …)" if cycle else "")
                + f"; the inline-chain figures were taken with the limit raised to {DEEP_RECURSION_LIMIT:,}"
            )
            self.deep_inline = True
            try:
                with recursion_limit(DEEP_RECURSION_LIMIT):
                    return self.start(flow)
            except RecursionError:
                self.report.fail(f"inline chain of {self.sizes.chain} nodes: RecursionError even so")
                return None

    # -- (a) bare Celery -------------------------------------------------------------------

    def round_trips(self, count: int, queue: str) -> list[float]:
        from studio.celery import ping

        samples, results = [], []
        for _ in range(count):
            started = time.perf_counter()
            result = ping.apply_async(queue=queue)
            result.get(timeout=30)
            samples.append((time.perf_counter() - started) * 1000)
            results.append(result)
        for result in results:
            result.forget()
        return samples

    def hop_chains(self, length: int) -> tuple[float | None, float | None]:
        """Milliseconds per hop of a chain of bare Celery hops, then of durable floor hops
        (``hops``), on the I/O worker, each as long as the worker chain."""
        bare = hops.chain_ms_per_hop(self.schema, hops.bare_chain_start(self.schema, length), length)
        floor = hops.chain_ms_per_hop(self.schema, hops.floor_chain_start(self.schema, length), length)
        for name, value in (("bare Celery hops", bare), ("durable floor hops", floor)):
            if value is None:
                self.report.fail(f"a chain of {length} {name} did not end within 30 s")
        return bare, floor

    def burst(self, count: int) -> float:
        """No-ops per second: fire ``count``, then wait for all of them."""
        from studio.celery import ping

        started = time.perf_counter()
        results = [ping.delay() for _ in range(count)]
        for result in results:
            result.get(timeout=120)
        per_s = count / (time.perf_counter() - started)
        for result in results:
            result.forget()
        return per_s

    # -- the whole run ---------------------------------------------------------------------

    def run(self) -> None:
        sizes, say = self.sizes, self.say
        default_queue, io_queue = settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_IO_QUEUE
        flows = {
            "inline": self.publish(
                f"bench chain inline {sizes.chain}", chain_graph(sizes.chain, worker=False)
            ),
            "worker": self.publish(
                f"bench chain worker {sizes.chain}", chain_graph(sizes.chain, worker=True)
            ),
            "fanout": self.publish(f"bench fan-out {sizes.fanout}", fanout_graph(sizes.fanout)),
            "small": self.publish("bench three nodes", small_graph()),
        }

        say("warming up: a few round trips and one run of each flow")
        self.round_trips(20, default_queue)
        self.round_trips(20, io_queue)
        self.hop_chains(20)
        self.finish(self.start(flows["worker"]), "worker chain (warm-up)")
        self.finish(self.start(flows["fanout"]), "fan-out (warm-up)")
        warm = self.start_inline_chain(flows["inline"])
        if warm is not None:
            self.finish(warm, "inline chain (warm-up)")
        for _ in range(5):
            self.finish(self.start(flows["small"]), "three-node run (warm-up)")

        say(f"(a) bare Celery: a burst of {sizes.burst} no-ops")
        per_s = self.burst(sizes.burst)

        pings: list[float] = []
        io_pings: list[float] = []
        bare_hops: list[float] = []
        floor_hops: list[float] = []
        walls: dict[str, list[float]] = {"inline": [], "worker": [], "fanout": []}
        for repeat in range(sizes.repeats):
            say(f"(a)(b)(c) round {repeat + 1} of {sizes.repeats}: round trips, chains, fan-out")
            pings += self.round_trips(sizes.pings // sizes.repeats, default_queue)
            io_pings += self.round_trips(sizes.pings // sizes.repeats, io_queue)
            bare, floor = self.hop_chains(sizes.chain - 2)
            bare_hops += [bare] if bare else []
            floor_hops += [floor] if floor else []
            for kind in ("worker", "inline", "fanout"):
                run = self.start_inline_chain(flows[kind]) if kind == "inline" else self.start(flows[kind])
                done = self.finish(run, f"{kind} flow") if run is not None else None
                if done is not None:
                    walls[kind].append(_wall_ms(done))

        say(f"(d) three-node runs from {sizes.clients} clients for {sizes.small_runs_s:g} s")
        small = self.small_runs(flows["small"])

        say(f"(e) the HTTP API: {sizes.api_requests} runs one at a time, then {sizes.clients} clients")
        api = self.api_runs(self.publish("bench API flow", api_graph()))

        self.tally()
        self.rows(
            pings=pings,
            io_pings=io_pings,
            bare_hops=bare_hops,
            floor_hops=floor_hops,
            per_s=per_s,
            walls=walls,
            small=small,
        )
        self.api_rows(api, percentile(io_pings, 95))

    def small_runs(self, flow: Flow) -> dict[str, float] | None:
        sizes = self.sizes
        ready = threading.Barrier(sizes.clients + 1)
        go = threading.Event()
        window = {"start": 0.0, "stop": 0.0}

        def client(index: int) -> tuple[list[tuple[float, float]], list[str]]:
            timings: list[tuple[float, float]] = []  # (latency ms, finished at)
            errors: list[str] = []
            try:
                self.start(flow, index)  # its own database connection, opened before the clock starts
                ready.wait()
                go.wait()
                while time.perf_counter() < window["stop"]:
                    started = time.perf_counter()
                    try:
                        self.start(flow, index)
                    except Exception as exc:  # counted and reported, the other clients go on
                        errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    finished = time.perf_counter()
                    timings.append(((finished - started) * 1000, finished))
            except threading.BrokenBarrierError:
                pass
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                ready.abort()
            finally:
                connections.close_all()  # this thread's connections
            return timings, errors

        with ThreadPoolExecutor(max_workers=sizes.clients) as pool:
            futures = [pool.submit(client, i) for i in range(sizes.clients)]
            try:
                ready.wait(timeout=60)
                window["start"] = time.perf_counter()
                window["stop"] = window["start"] + sizes.small_runs_s
            except threading.BrokenBarrierError:
                pass
            finally:
                go.set()
            outcomes = [f.result() for f in futures]
        timings = [t for mine, _ in outcomes for t in mine]
        errors = [e for _, mine in outcomes for e in mine]
        if errors:
            self.report.fail(f"three-node runs: {len(errors)} raised, first: {errors[0]}", len(errors))
        if not timings:
            return None
        elapsed = max(finished for _, finished in timings) - window["start"]
        latencies = [latency for latency, _ in timings]
        return {
            "runs": len(timings),
            "per_s": len(timings) / elapsed,
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
        }

    def api_runs(self, flow: Flow) -> dict[str, float] | None:
        """``POST /api/v1/flows/<id>/runs/?wait=10`` on a uvicorn server, over kept-alive connections:
        sequential latencies, each followed by a no-op call through the same stack (``GET
        /api/v1/me/``: the key's authentication and a small answer) as a baseline taken under the
        same conditions; then runs/s from ``clients`` threads for ``small_runs_s``."""
        from studio.tenants.roles import Role
        from studio.tenants.services import api_key_create

        sizes = self.sizes
        key = api_key_create(tenant=self.tenant, name="bench", role=Role.BUILDER).raw_key
        path = f"/api/v1/flows/{flow.pk}/runs/?wait=10"
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        errors: list[str] = []

        def post(conn: http.client.HTTPConnection, n: int) -> float:
            started = time.perf_counter()
            conn.request("POST", path, body=json.dumps({"inputs": {"n": n}}), headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200 or json.loads(body).get("status") != RunStatus.SUCCEEDED:
                errors.append(f"{response.status} {body[:200]!r}")
            return elapsed

        def noop(conn: http.client.HTTPConnection) -> float:
            started = time.perf_counter()
            conn.request("GET", "/api/v1/me/", headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                errors.append(f"GET /api/v1/me/: {response.status} {body[:200]!r}")
            return elapsed

        with WebServer(self.say) as web:
            host, port = "127.0.0.1", web.port
            conn = http.client.HTTPConnection(host, port, timeout=30)
            for n in range(10):  # warm the server's connection pool and caches
                post(conn, n)
                noop(conn)
            latencies, noops = [], []
            for n in range(sizes.api_requests):
                latencies.append(post(conn, n))
                noops.append(noop(conn))
            conn.close()
            stop = time.perf_counter() + sizes.small_runs_s

            def client(index: int) -> int:
                mine, done = http.client.HTTPConnection(host, port, timeout=30), 0
                while time.perf_counter() < stop:
                    post(mine, index)
                    done += 1
                mine.close()
                return done

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=sizes.clients) as pool:
                done = sum(pool.map(client, range(sizes.clients)))
            elapsed = time.perf_counter() - started
        if errors:
            self.report.fail(f"API runs: {len(errors)} did not succeed, first: {errors[0]}", len(errors))
        return {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95), "per_s": done / elapsed,
                "noop_p95": percentile(noops, 95)}  # fmt: skip

    def api_rows(self, api: dict[str, float], io_rtt_p95: float) -> None:
        """``io_rtt_p95``: the I/O queue's Celery round trip P95, where the flow's one worker step goes."""
        add = self.report.add
        add(Row("api_wait_p50_ms", "API run with ?wait, one worker step: P50", api["p50"], "ms"))
        add(Row("api_wait_p95_ms", "API run with ?wait, one worker step: P95", api["p95"], "ms",
                LANGFLOW_API_P95_MS, f"{LANGFLOW_API_P95_MS:.0f} ms Langflow*", (API_P95_TARGET,)))  # fmt: skip
        add(Row("api_noop_p95_ms", "API no-op call (GET /api/v1/me/), after each ?wait: P95", api["noop_p95"],
                "ms"))  # fmt: skip
        floor = api["noop_p95"] + io_rtt_p95
        row = add(Row("api_wait_vs_floor", "?wait P95 next to no-op call P95 + I/O queue round trip P95",
                      api["p95"], "ms", floor, f"{floor:.1f} ms no-op + Celery"))  # fmt: skip
        self._add_ratio("api_wait_ratio_to_floor", row)
        add(Row("api_runs_per_s", f"API runs with ?wait, {self.sizes.clients} clients", api["per_s"], "runs/s",
                LANGFLOW_API_RUNS_PER_S, f"{LANGFLOW_API_RUNS_PER_S} runs/s Langflow*"))  # fmt: skip
        self.report.notes.append(
            f"* Langflow is not installed here either: {LANGFLOW_API_P95_MS:.0f} ms P95 and "
            f"{LANGFLOW_API_RUNS_PER_S} runs/s for a 2-node flow through its run API are from BENCHMARKS.md"
        )

    def tally(self) -> None:
        """Every run this benchmark made, from the database: all of them must have succeeded."""
        counts = dict(
            Run.objects.filter(tenant=self.tenant).values_list("status").annotate(n=Count("id")).order_by()
        )
        self.report.runs += sum(counts.values())
        bad = {status: n for status, n in counts.items() if status != RunStatus.SUCCEEDED}
        if bad:
            self.report.fail(
                "runs that did not succeed: " + ", ".join(f"{n} {s}" for s, n in sorted(bad.items())),
                sum(bad.values()),
            )

    # -- figures -----------------------------------------------------------------------------

    def rows(self, *, pings, io_pings, bare_hops, floor_hops, per_s, walls, small) -> None:
        report, sizes = self.report, self.sizes
        p50, p95 = percentile(pings, 50), percentile(pings, 95)
        report.add(Row("celery_rtt_p50_ms", "Celery no-op round trip P50 (prefork)", p50, "ms",
                       REFERENCE_CELERY_P50_MS, f"{REFERENCE_CELERY_P50_MS} ms BENCHMARKS.md"))  # fmt: skip
        report.add(Row("celery_rtt_p95_ms", "Celery no-op round trip P95 (prefork)", p95, "ms",
                       REFERENCE_CELERY_P95_MS, f"{REFERENCE_CELERY_P95_MS} ms BENCHMARKS.md"))  # fmt: skip
        report.add(Row("celery_tasks_per_s", f"Celery no-op burst of {sizes.burst:,}", per_s, "tasks/s",
                       REFERENCE_CELERY_PER_S, f"{REFERENCE_CELERY_PER_S:.0f} tasks/s BENCHMARKS.md"))  # fmt: skip
        report.add(Row("celery_io_rtt_p50_ms", "Celery no-op round trip P50 (threads, I/O queue)",
                       percentile(io_pings, 50), "ms", p50, f"{p50:.2f} ms prefork P50"))  # fmt: skip
        hop = statistics.median(bare_hops) if bare_hops else None
        report.add(Row("celery_hop_ms", f"Celery no-op sending the next, {sizes.chain - 2} hops, per hop (I/O queue)",
                       hop, "ms", p50, f"{p50:.2f} ms Celery P50"))  # fmt: skip
        floor = statistics.median(floor_hops) if floor_hops else None
        row = report.add(Row("durable_floor_hop_ms", "durable floor: claim, lock, write, send; per hop", floor, "ms",
                             p50, f"{p50:.2f} ms Celery P50"))  # fmt: skip
        self._add_ratio("durable_floor_ratio_to_celery_p50", row)

        inline_ms = self._per_step(walls["inline"], sizes.chain)
        row = report.add(Row(
            "chain_inline_ms_per_step", f"inline step, {sizes.chain}-node chain", inline_ms, "ms/step",
            LANGGRAPH_STEP_MS, f"{LANGGRAPH_STEP_MS:.2f} ms LangGraph step*", (INLINE_STEP_TARGET,),
            error="" if inline_ms else "no successful run",
        ))  # fmt: skip
        if self.deep_inline:
            row.label += " (raised recursion limit)"
        self._add_ratio("chain_inline_ratio_to_langgraph", row)
        report.add(Row("chain_inline_steps_per_s", "inline chain throughput", _per_s(inline_ms), "steps/s"))

        worker_ms = self._per_step(walls["worker"], sizes.chain - 2)
        row = report.add(Row(
            "chain_worker_ms_per_step", f"worker step, {sizes.chain}-node chain", worker_ms, "ms/step",
            p50, f"{p50:.2f} ms Celery P50", (WORKER_STEP_TARGET,), error="" if worker_ms else "no successful run",
        ))  # fmt: skip
        self._add_ratio("chain_worker_ratio_to_celery_p50", row)
        if floor:
            row = report.add(Row("chain_worker_vs_floor", "worker step next to the durable floor", worker_ms,
                                 "ms/step", floor, f"{floor:.2f} ms durable floor"))  # fmt: skip
            self._add_ratio("chain_worker_ratio_to_floor", row)
        report.add(Row("chain_worker_steps_per_s", "worker chain throughput", _per_s(worker_ms), "steps/s"))

        steps = sizes.fanout + 3  # trigger, the branches, the join, the output
        fan_wall = statistics.median(walls["fanout"]) if walls["fanout"] else None
        report.add(Row("fanout_wall_ms", f"fan-out 1→{sizes.fanout} + join, wall", fan_wall, "ms",
                       error="" if fan_wall else "no successful run"))  # fmt: skip
        report.add(Row(
            "fanout_steps_per_s", f"fan-out 1→{sizes.fanout} + join, throughput",
            steps / (fan_wall / 1000) if fan_wall else None, "steps/s", per_s, f"{per_s:,.0f} tasks/s Celery burst",
        ))  # fmt: skip

        row = report.add(Row(
            "small_runs_per_s", f"three-node runs, {sizes.clients} clients", small["per_s"] if small else None,
            "runs/s", LANGGRAPH_RUNS_PER_S, f"{LANGGRAPH_RUNS_PER_S:.0f} runs/s LangGraph*", SMALL_RUNS_TARGETS,
            error="" if small else "no run finished",
        ))  # fmt: skip
        self._add_ratio("small_runs_ratio_to_langgraph", row)
        if small:
            report.figures["small_runs"] = small["runs"]
            report.add(Row("small_run_p50_ms", "three-node run latency P50 under load", small["p50"], "ms"))
            report.add(Row("small_run_p95_ms", "three-node run latency P95 under load", small["p95"], "ms"))

        report.notes.append(
            f"* LangGraph is not installed here: {LANGGRAPH_STEP_MS:.2f} ms per durable step and "
            f"{LANGGRAPH_RUNS_PER_S:.0f} three-node runs/s are constants from BENCHMARKS.md, measured on "
            "these machines (LangGraph 1.2, PostgreSQL checkpointer)"
        )
        report.notes.append(
            f"chains and fan-out: median of {sizes.repeats} run(s) after a warm-up run, timed from the run's "
            "created_at to its finished_at; a worker step is wall / the chain's worker steps"
        )

    def _per_step(self, walls: list[float], steps: int) -> float | None:
        return statistics.median(walls) / steps if walls else None

    def _add_ratio(self, key: str, row: Row) -> None:
        if row.ratio is not None:
            self.report.figures[key] = round(row.ratio, 4)


def _per_s(ms_per_step: float | None) -> float | None:
    return 1000 / ms_per_step if ms_per_step else None


def run(*, quick: bool, say: Say) -> Report:
    sizes = QUICK if quick else FULL
    report = Report(name="engine", quick=quick)
    load = os.getloadavg()
    report.notes.append(
        f"load average when it started: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {report.cpu_count} cores "
        "(other processes on a shared machine move these figures)"
    )
    with (
        throwaway_tenant("bench") as tenant,
        hops.hop_schema() as schema,
        celery_workers(say=say, include=("studio.bench.hops",), io_queues=(hops.QUEUE,)) as workers,
    ):
        others = other_consumers(workers)
        if others:
            report.notes.append(
                "other workers consume these queues too and share the work measured here: "
                + ", ".join(others)
            )
        EngineBench(tenant=tenant, sizes=sizes, report=report, say=say, schema=schema).run()
        say("stopping the workers and deleting the benchmark tenant")
    return report
