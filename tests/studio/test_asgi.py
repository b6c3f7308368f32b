"""The HTTP side of ``studio.asgi``: Django's middleware chain built for sync code, entered once."""

from __future__ import annotations

import asyncio
import json

from channels.testing import HttpCommunicator

from studio.asgi import application, django_asgi_app


def test_the_middleware_chain_is_built_for_sync_code():
    assert not asyncio.iscoroutinefunction(django_asgi_app._middleware_chain)


def test_a_request_crosses_to_its_thread_three_times(monkeypatch):
    """The request_started signal, the middleware chain with the view, and closing the response:
    Django's own handler crossed about ten times for the same request."""
    from asgiref.sync import SyncToAsync

    crossings: list[str] = []
    call = SyncToAsync.__call__

    async def counted(self, *args, **kwargs):
        crossings.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await call(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counted)

    async def go():
        communicator = HttpCommunicator(
            application, "GET", "/no-such-page/", headers=[(b"host", b"localhost")]
        )
        return await communicator.get_response(timeout=20)

    response = asyncio.run(go())
    assert response["status"] == 404
    assert len(crossings) <= 3, crossings
    assert "BaseHandler.get_response" in crossings


def test_an_oversized_body_is_refused_through_asgi(settings):
    settings.MAX_REQUEST_BODY_BYTES = 1024

    async def go():
        communicator = HttpCommunicator(
            application, "POST", "/api/v1/flows/", body=b"x" * 2048,
            headers=[(b"host", b"localhost"), (b"content-type", b"application/json"), (b"content-length", b"2048")],
        )  # fmt: skip
        return await communicator.get_response(timeout=20)

    response = asyncio.run(go())
    assert response["status"] == 413
    assert json.loads(response["body"])["error"]["code"] == "too_large"


def test_the_next_request_gets_the_thread_of_the_one_before():
    """Not a new thread started and joined for every request, as Django's own handler does."""
    import threading

    from django.core.signals import request_started

    seen: list[int] = []

    def started(**kwargs):
        seen.append(threading.get_ident())

    request_started.connect(started)

    async def get():
        communicator = HttpCommunicator(
            application, "GET", "/no-such-page/", headers=[(b"host", b"localhost")]
        )
        return await communicator.get_response(timeout=20)

    async def two():
        return [await get(), await get()]

    try:
        responses = asyncio.run(two())
    finally:
        request_started.disconnect(started)
    assert [r["status"] for r in responses] == [404, 404]
    assert len(seen) == 2 and seen[0] == seen[1], seen
    assert threading.get_ident() not in seen  # the request's thread, not the event loop's


def test_a_thread_still_working_when_its_request_ended_is_not_handed_out_again():
    import threading

    from studio.asgi import RequestThreads

    threads = RequestThreads(limit=4)
    first = threads.take()
    release = threading.Event()
    running = first.submit(release.wait, 10)  # a view still waiting after its client left
    threads.give(first)
    second = threads.take()
    assert second is not first
    release.set()
    assert running.result(timeout=5) is True
    threads.give(second)
    assert threads.take() is second  # an idle one is reused
