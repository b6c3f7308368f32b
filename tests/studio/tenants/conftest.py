from __future__ import annotations

import pytest

from studio.realtime import redis_client
from studio.tenants import ratelimit


@pytest.fixture
def fresh_buckets():
    """Rate-limit buckets live in Redis past a test (and a session, on a shared Redis): start
    from none, and without this process's credit on them."""
    client = redis_client()
    stale = list(client.scan_iter(match=ratelimit._key("*"), count=1000))
    if stale:
        client.delete(*stale)
    ratelimit._credits.clear()
