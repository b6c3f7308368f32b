"""ws/runs/<id>/ on the real channels-redis layer: who may listen, and the events that arrive."""

from __future__ import annotations

import asyncio

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from studio.routing import websocket_urlpatterns
from studio.tenants.roles import Role
from tests.factories import make_member, make_tenant
from tests.flows.helpers import edge, graph, node, published_flow, scripted_llm, start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

APP = URLRouter(websocket_urlpatterns)


def slow_flow(tenant):
    return published_flow(tenant, graph(
        [node("trigger", "trigger"), scripted_llm("think", script={"responses": [{"text": "ok", "delay_ms": 300}]}),
         node("out", "output")],
        [edge("trigger", "think"), edge("think", "out")],
    ))  # fmt: skip


def communicator(run_id: int, user) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(APP, f"/ws/runs/{run_id}/")
    comm.scope["user"] = user
    return comm


async def connect_and_follow(run_id: int, user) -> list[dict]:
    comm = communicator(run_id, user)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    events = [await comm.receive_json_from(timeout=5)]
    while events[-1].get("run", {}).get("status") not in ("succeeded", "failed"):
        events.append(await comm.receive_json_from(timeout=10))
    await comm.disconnect()
    return events


def test_a_member_gets_a_snapshot_then_live_step_events():
    tenant = make_tenant("Live")
    user = make_member(tenant, Role.BUILDER)
    run = start(slow_flow(tenant))
    events = asyncio.run(connect_and_follow(run.pk, user))
    assert events[0]["type"] == "run.snapshot"
    assert {s["node_id"] for s in events[0]["run"]["steps"]} == {"trigger", "think", "out"}
    updates = [e for e in events[1:] if e["type"] == "run.update"]
    seen = {(s["node_id"], s["status"]) for e in updates for s in e["steps"]}
    assert ("think", "running") in seen or events[0]["run"]["steps"][1]["status"] != "queued"
    assert ("think", "succeeded") in seen and ("out", "succeeded") in seen
    assert updates[-1]["run"]["status"] == "succeeded"


@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_anonymous_and_other_tenants_are_refused(who):
    tenant = make_tenant("Mine")
    run = start(slow_flow(tenant))
    user = AnonymousUser() if who == "anonymous" else make_member(make_tenant("Theirs"), Role.OWNER)

    async def attempt():
        comm = communicator(run.pk, user)
        connected, code = await comm.connect(timeout=5)
        await comm.disconnect()
        return connected, code

    connected, code = asyncio.run(attempt())
    assert not connected
    assert code == (4401 if who == "anonymous" else 4404)


def test_a_foreign_origin_is_refused_by_the_full_application():
    from studio.asgi import application

    tenant = make_tenant("Origin")
    run = start(slow_flow(tenant))

    async def attempt():
        comm = WebsocketCommunicator(
            application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"https://evil.example")]
        )
        connected, _ = await comm.connect(timeout=5)
        await comm.disconnect()
        return connected

    assert asyncio.run(attempt()) is False
