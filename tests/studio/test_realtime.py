"""studio.realtime on the real Redis: events published without a round trip, and listeners."""

from __future__ import annotations

import pytest

from studio import realtime
from studio.realtime import GroupListener, group_name, publish

pytestmark = pytest.mark.django_db


def test_a_published_event_reaches_a_listener_of_its_group_only():
    with GroupListener(group_name("run", 1)) as ours, GroupListener(group_name("run", 2)) as theirs:
        publish(group_name("run", 1), {"type": "run.update", "run": {"id": 1, "status": "running"}})
        assert ours.next_event(5) == {"type": "run.update", "run": {"id": 1, "status": "running"}}
        assert theirs.next_event(0.3) is None


def test_a_listener_reused_from_another_group_hears_only_its_own():
    with GroupListener(group_name("run", 3)):
        pass  # back among the idle subscribers, still subscribed until Redis confirms
    with GroupListener(group_name("run", 4)) as listener:
        publish(group_name("run", 3), {"type": "run.update", "n": 3})
        publish(group_name("run", 4), {"type": "run.update", "n": 4})
        assert listener.next_event(5) == {"type": "run.update", "n": 4}


def test_the_publisher_asks_for_no_replies_and_recovers_when_redis_drops_it():
    group = group_name("run", 5)
    publish(group, {"type": "run.update", "n": 0})
    connection = realtime._publisher._connection
    assert connection is not None and not connection.can_read(timeout=0.2)  # no replies to read

    client = realtime.redis_client()
    killed = 0
    for entry in client.client_list():
        if entry.get("cmd") == "publish":
            killed += client.client_kill_filter(_id=entry["id"])
    assert killed >= 1

    with GroupListener(group) as listener:
        heard = None
        for n in range(1, 6):  # a write to a socket Redis closed may vanish; the next reconnects
            publish(group, {"type": "run.update", "n": n})
            heard = listener.next_event(0.3)
            if heard is not None:
                break
        assert heard is not None and heard["n"] <= 3, heard
    assert not realtime._publisher._connection.can_read(timeout=0.2)  # replies off again
