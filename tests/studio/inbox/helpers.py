"""Approval flows and waits for inbox tests."""

from __future__ import annotations

import time

from flows.models import Run
from studio.inbox.models import ReviewTask
from studio.tenants.selectors import Actor
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm

EDITABLE = {"type": "object", "properties": {"reply": {"type": "string", "maxLength": 200}}}


def approval_flow(tenant, *, draft: dict | None = None, name: str = "refunds", timed_out: bool = True,
                  capabilities: list[str] | None = None, **approval) -> object:  # fmt: skip
    """trigger → draft (a model) → check (approval) → approved: send / rejected: dropped / timed_out: late."""
    config = {"instructions": "Refund {{ input.amount }} to {{ input.customer | default('the customer') }}?",
              "data": {"reply": "{{ nodes.draft.output.text }}", "amount": "{{ input.amount }}"},
              "editable_fields": EDITABLE, "reviewers": {"role": "reviewer"}, **approval}  # fmt: skip
    nodes = [
        node("trigger", "trigger"),
        draft or scripted_llm("draft", "Draft a reply to {{ input.customer | default('you') }}",
                              script={"responses": ["We will refund you."]}),
        node("check", "approval", **config),
        node("send", "output", mapping={"sent": "{{ nodes.check.output.reply }}",
                                        "amount": "{{ nodes.check.output.amount }}"}),
        node("dropped", "output", mapping={"dropped": "{{ nodes.check.output.comment }}"}),
    ]  # fmt: skip
    edges = [edge("trigger", "draft"), edge("draft", "check"), edge("check", "send", "approved"),
             edge("check", "dropped", "rejected")]  # fmt: skip
    if timed_out:
        nodes.append(node("late", "output", mapping={"late": True}))
        edges.append(edge("check", "late", "timed_out"))
    return published_flow(tenant, graph(nodes, edges), name=name, capabilities=capabilities)


def wait_review(run: Run, timeout: float = 20, count: int = 1, **filters) -> ReviewTask:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reviews = list(ReviewTask.objects.filter(run=run, **filters).order_by("pk"))
        if len(reviews) >= count:
            return reviews[-1]
        run.refresh_from_db()
        if run.is_finished:
            raise AssertionError(f"run {run.pk} ended {run.status} without a review: {run.error}")
        time.sleep(0.05)
    raise AssertionError(f"no review for run {run.pk} after {timeout} s")


def wait_reviews(runs: list[Run], timeout: float = 30) -> list[ReviewTask]:
    deadline = time.monotonic() + timeout
    ids = [r.pk for r in runs]
    while time.monotonic() < deadline:
        reviews = list(ReviewTask.objects.filter(run_id__in=ids))
        if len(reviews) >= len(ids):
            return reviews
        time.sleep(0.1)
    found = ReviewTask.objects.filter(run_id__in=ids).count()
    states = list(Run.objects.filter(pk__in=ids).values_list("status", "error")[:3])
    raise AssertionError(f"{found} of {len(ids)} reviews after {timeout} s; runs: {states}")


def actor(tenant, user, role: str) -> Actor:
    return Actor(tenant=tenant, role=role, user=user)
