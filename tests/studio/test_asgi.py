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
