"""Workers die mid-step (SIGKILL); the run still finishes, through lease expiry rather than the
broker's one-hour visibility timeout, and the outside world sees the effect's key once."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from django.conf import settings

from flows import engine
from flows.models import RunStatus
from studio.celery import app
from tests.conftest import start_worker, stop_process, wait_for, wait_for_worker
from tests.factories import make_loopback_tenant
from tests.flows.helpers import edge, graph, node, published_flow, start
from tests.flows.receiver import Receiver, json_answer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def receiver():
    with Receiver() as server:
        server.on("/effect", json_answer({"done": True}, delay_s=1.0))
        yield server


@pytest.fixture
def lone_worker(celery_worker):
    """A prefork worker of its own on the I/O queue, with the session's I/O worker paused, so the
    test knows which process runs the step."""
    io_queue = settings.CELERY_IO_QUEUE
    app.control.cancel_consumer(io_queue, destination=[celery_worker.io_name], reply=True)
    started: list = []

    def spawn():
        name = f"lone-{os.getpid()}-{len(started)}@"
        proc = start_worker(name, queue=io_queue, pool="prefork", concurrency=1, log_name=f"{name[:-1]}.log")
        wait_for_worker(name, proc)
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        stop_process(proc, timeout=10)
    app.control.add_consumer(io_queue, destination=[celery_worker.io_name], reply=True)


def effect_flow():
    return make_loopback_tenant("Recovery")


def run_until_done(run, *, timeout: float = 40):
    """Wait for the run, sweeping every half second as beat would."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.status in ("succeeded", "failed", "cancelled", "timed_out"):
            return run
        engine.steps_recover()
        time.sleep(0.5)
    raise AssertionError(f"run still {run.status}")


def flow_calling(receiver, tenant):
    return published_flow(tenant, graph(
        [node("trigger", "trigger"),
         node("charge", "http", method="POST", url=receiver.url("/effect"), body={"amount": 10}, timeout_s=3),
         node("out", "output", mapping={"ok": "{{ nodes.charge.output.body.done }}"})],
        [edge("trigger", "charge"), edge("charge", "out")],
    ), capabilities=["http:127.0.0.1"])  # fmt: skip


@pytest.mark.parametrize("what", ["pool child", "whole worker"])
def test_a_worker_killed_mid_step_does_not_lose_the_run(receiver, lone_worker, what):
    worker = lone_worker()
    run = start(flow_calling(receiver, effect_flow()))
    wait_for(lambda: receiver.calls("/effect"), timeout=20, what="the step reached the receiver")
    children = psutil.Process(worker.pid).children()
    if what == "pool child":
        children[0].send_signal(signal.SIGKILL)  # the main process replaces it and requeues the message
    else:
        os.kill(worker.pid, signal.SIGKILL)
        for child in children:
            child.send_signal(signal.SIGKILL)
        worker.wait()
        lone_worker()  # a new worker comes up; the dead one's message stays unacknowledged
    killed_at = time.monotonic()
    run = run_until_done(run)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.outputs == {"ok": True}
    assert time.monotonic() - killed_at < 30  # the lease, not the 1-hour visibility timeout
    step = run.steps.get(node_id="charge")
    assert step.attempt >= 2
    assert receiver.keys("/effect") == {step.idempotency_key}  # one key, however many deliveries
