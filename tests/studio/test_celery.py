"""``studio.celery.send_tasks``: the message ``apply_async`` would send, in one round trip."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from celery.result import AsyncResult
from django.conf import settings

from flows.tasks import step_execute_task
from studio.celery import _broker_client, app, ping, send_tasks

# What differs between two sends of the same task by design: fresh ids, and who sent it.
PER_MESSAGE = {
    ("headers", "id"), ("headers", "root_id"), ("headers", "origin"),
    ("properties", "correlation_id"), ("properties", "delivery_tag"), ("properties", "reply_to"),
}  # fmt: skip


def _popped(queue: str) -> dict:
    raw = _broker_client().rpop(queue)
    assert raw is not None, f"nothing on {queue}"
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def _flat(message: dict, path: tuple = ()) -> dict:
    out = {}
    for key, value in message.items():
        if isinstance(value, dict) and value and key != "stamps":
            out.update(_flat(value, (*path, key)))
        else:
            out[(*path, key)] = value
    return out


@pytest.mark.parametrize(("task", "args"), [(step_execute_task, [42]), (ping, [])], ids=["step", "ping"])
def test_the_message_is_the_one_apply_async_sends(task, args):
    """Field by field, but for ids and sender: a Celery or kombu upgrade that changes the message
    fails here, not in production."""
    queue = f"test-send-{secrets.token_hex(4)}"
    try:
        task.apply_async(args=args, queue=queue)
        (task_id,) = send_tasks(task, [(args, queue)])
        celery, ours = _flat(_popped(queue)), _flat(_popped(queue))
    finally:
        _broker_client().delete(queue)
    assert set(ours) == set(celery)
    assert {k: v for k, v in ours.items() if k not in PER_MESSAGE} == {
        k: v for k, v in celery.items() if k not in PER_MESSAGE
    }
    assert ours[("headers", "id")] == ours[("headers", "root_id")] == ours[("properties", "correlation_id")]
    assert ours[("headers", "id")] == task_id


def test_many_tasks_go_in_one_round_trip_each_to_its_queue():
    queues = [f"test-send-{secrets.token_hex(4)}" for _ in range(2)]
    try:
        ids = send_tasks(step_execute_task, [([1], queues[0]), ([2], queues[1]), ([3], queues[0])])
        assert len(set(ids)) == 3
        client = _broker_client()
        assert (client.llen(queues[0]), client.llen(queues[1])) == (2, 1)
        firsts = [_popped(queues[0])["body"][0], _popped(queues[0])["body"][0], _popped(queues[1])["body"][0]]
        assert firsts == [[1], [3], [2]]  # each queue in the order sent
    finally:
        _broker_client().delete(*queues)


def test_sending_nothing_sends_nothing():
    assert send_tasks(step_execute_task, []) == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_what_was_sent(celery_worker):
    (task_id,) = send_tasks(ping, [([], settings.CELERY_TASK_DEFAULT_QUEUE)])
    assert AsyncResult(task_id, app=app).get(timeout=30) == "pong"
