"""Graph builders and waits for flow tests."""

from __future__ import annotations

import time

from flows import services
from flows.graph import edge_doc as edge
from flows.graph import graph_doc as graph
from flows.graph import node_doc as node
from flows.models import RUN_FINISHED, Flow, Run

__all__ = ["edge", "graph", "node", "published_flow", "scripted_llm", "start", "statuses", "wait_run"]


def scripted_llm(node_id: str, prompt: str = "{{ input }}", **config) -> dict:
    return node(node_id, "llm", provider="scripted", model="claude-haiku-4-5", prompt=prompt, **config)


def published_flow(tenant, doc: dict, *, name: str = "flow", capabilities: list[str] | None = None) -> Flow:
    flow = services.flow_create(tenant=tenant, name=name, graph=doc)
    if capabilities:
        flow.granted_capabilities = capabilities
        flow.save(update_fields=["granted_capabilities"])
    services.flow_publish(flow=flow)
    return flow


def start(flow: Flow, inputs: dict | None = None, **kwargs) -> Run:
    run, _ = services.run_request(flow=flow, version=None, inputs=inputs or {}, trigger="api", **kwargs)
    return run


def wait_run(run: Run, timeout: float = 30) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in RUN_FINISHED:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run.pk} still {run.status} after {timeout} s: "
                         f"{ {s.node_id: s.status for s in run.steps.all()} }")  # fmt: skip


def statuses(run: Run) -> dict[str, str]:
    return {s.node_id: s.status for s in run.steps.all()}
