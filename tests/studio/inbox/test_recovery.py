"""A worker killed while the run resumes after a decision: the run still finishes from the
approval on, the effect's key reaches the outside world once, and nobody is asked again."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from flows.models import RunStatus
from studio.inbox import services
from studio.inbox.models import ReviewTask
from studio.tenants.roles import Role
from tests.conftest import wait_for
from tests.factories import make_member
from tests.flows.helpers import edge, graph, node, published_flow, start
from tests.flows.receiver import Receiver, json_answer
from tests.flows.test_recovery import effect_flow, lone_worker, run_until_done  # noqa: F401 (fixture)
from tests.studio.inbox.helpers import actor, wait_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_a_worker_killed_while_resuming_does_not_lose_the_run_or_repeat_the_review(lone_worker):  # noqa: F811
    with Receiver() as receiver:
        receiver.on("/effect", json_answer({"done": True}, delay_s=1.0))
        tenant = effect_flow()
        flow = published_flow(tenant, graph(
            [node("trigger", "trigger"), node("ok", "approval", data={"amount": 10}),
             node("charge", "http", method="POST", url=receiver.url("/effect"), body={"amount": 10}, timeout_s=3),
             node("out", "output", mapping={"ok": "{{ nodes.charge.output.body.done }}"})],
            [edge("trigger", "ok"), edge("ok", "charge", "approved"), edge("charge", "out")],
        ), capabilities=["http:127.0.0.1"])  # fmt: skip
        worker = lone_worker()
        run = start(flow)
        review = wait_review(run)
        reviewer = actor(tenant, make_member(tenant, Role.REVIEWER), Role.REVIEWER)
        services.review_decide(review=review, actor=reviewer, decision="approve")
        wait_for(lambda: receiver.calls("/effect"), timeout=20, what="the resumed step reached the receiver")
        children = psutil.Process(worker.pid).children()
        os.kill(worker.pid, signal.SIGKILL)
        for child in children:
            child.send_signal(signal.SIGKILL)
        worker.wait()
        lone_worker()
        run = run_until_done(run)
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert run.outputs == {"ok": True}
        charge = run.steps.get(node_id="charge")
        assert charge.attempt >= 2 and receiver.keys("/effect") == {charge.idempotency_key}
        assert run.steps.get(node_id="ok").attempt == 1  # the approval did not run again
        assert ReviewTask.objects.filter(run=run).count() == 1  # nobody was asked twice
