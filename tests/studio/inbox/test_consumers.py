"""ws/inbox/ on the real channels-redis layer: who may join, and which group gets which events."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from studio.inbox import services
from studio.routing import websocket_urlpatterns
from studio.tenants.roles import Role
from tests.factories import make_member, make_tenant
from tests.flows.helpers import start
from tests.studio.inbox.helpers import actor, approval_flow, wait_review

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

APP = URLRouter(websocket_urlpatterns)


def communicator(user, query: str = "") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(APP, f"/ws/inbox/{query}")
    comm.scope["user"] = user
    return comm


async def attempt(user, query: str = "") -> tuple[bool, int | None]:
    comm = communicator(user, query)
    connected, code = await comm.connect(timeout=5)
    await comm.disconnect()
    return connected, code


def test_anonymous_viewers_and_another_tenants_reviewers_are_refused():
    mine, theirs = make_tenant("Mine"), make_tenant("Theirs")
    their_reviewer = make_member(theirs, Role.REVIEWER)
    viewer = make_member(mine, Role.VIEWER)
    assert asyncio.run(attempt(AnonymousUser())) == (False, 4401)
    assert asyncio.run(attempt(their_reviewer, f"?tenant={mine.pk}")) == (False, 4403)
    assert asyncio.run(attempt(viewer)) == (False, 4403)
    assert asyncio.run(attempt(their_reviewer))[0] is True  # their own inbox is fine


def test_a_foreign_origin_is_refused_by_the_full_application():
    from studio.asgi import application

    user = make_member(make_tenant("Origin"), Role.REVIEWER)

    async def go():
        comm = WebsocketCommunicator(
            application, "/ws/inbox/", headers=[(b"origin", b"https://evil.example")]
        )
        comm.scope["user"] = user
        connected, _ = await comm.connect(timeout=5)
        await comm.disconnect()
        return connected

    assert asyncio.run(go()) is False


def test_events_reach_the_tenants_reviewers_only_after_commit():
    acme, globex = make_tenant("Acme"), make_tenant("Globex")
    rita = make_member(acme, Role.REVIEWER, username="rita")
    remy = make_member(acme, Role.ADMIN, username="remy")
    gus = make_member(globex, Role.REVIEWER, username="gus")
    flow = approval_flow(acme)

    async def scenario():
        ours, admin, theirs = communicator(rita), communicator(remy), communicator(gus)
        for comm in (ours, admin, theirs):
            assert (await comm.connect(timeout=5))[0]
            assert (await comm.receive_json_from(timeout=5))["type"] == "inbox.ready"
        run = await database_sync_to_async(start)(flow, {"amount": 3})
        created = await ours.receive_json_from(timeout=15)
        assert created["type"] == "review.event" and created["event"] == "created"
        assert created["review"]["run"] == run.pk and created["review"]["flow_name"] == "refunds"
        assert created["unread"] == 1  # the navigation badge: unclaimed reviews, this one included
        assert (await admin.receive_json_from(timeout=5))["event"] == "created"
        review = await database_sync_to_async(wait_review)(run)
        await database_sync_to_async(services.review_claim)(
            review=review, actor=actor(acme, rita, Role.REVIEWER)
        )
        claimed = await admin.receive_json_from(timeout=5)
        assert claimed["event"] == "claimed" and claimed["review"]["claimed_by"] == "rita"
        assert claimed["unread"] == 0
        await database_sync_to_async(services.review_decide)(
            review=review, actor=actor(acme, rita, Role.REVIEWER), decision="approve"
        )
        events = [(await admin.receive_json_from(timeout=5))["event"]]
        assert events == ["decided"]
        assert (await ours.receive_json_from(timeout=5))["event"] == "claimed"
        assert await theirs.receive_nothing(timeout=0.5)  # Globex heard nothing of Acme's review
        for comm in (ours, admin, theirs):
            await comm.disconnect()

    asyncio.run(scenario())


def test_group_events_skip_channels_per_message_database_close_and_pings_keep_it(monkeypatch):
    """A fan-out to N sockets made N serialised hops to Channels' database thread just to close
    connections that ``forward`` never opens; other messages still go through Channels' dispatch."""
    import channels.consumer

    from studio.realtime import group_name, publish

    tenant = make_tenant("Hops")
    reviewer = make_member(tenant, Role.REVIEWER)
    closes = []
    original = channels.consumer.aclose_old_connections

    async def counted():
        closes.append(1)
        return await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)

    async def scenario():
        comms = [communicator(reviewer) for _ in range(3)]
        for comm in comms:
            assert (await comm.connect(timeout=5))[0]
            assert (await comm.receive_json_from(timeout=5))["type"] == "inbox.ready"
        before = len(closes)
        await database_sync_to_async(publish)(
            group_name("inbox", tenant.pk), {"type": "review.event", "n": 1}
        )
        for comm in comms:
            assert await comm.receive_json_from(timeout=5) == {"type": "review.event", "n": 1}
        assert len(closes) == before  # three sockets, no hop
        await comms[0].send_json_to({"type": "ping"})
        assert await comms[0].receive_json_from(timeout=5) == {"type": "pong"}
        assert len(closes) == before + 1  # the client's message took Channels' dispatch
        for comm in comms:
            await comm.disconnect()

    asyncio.run(scenario())
