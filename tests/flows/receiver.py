"""A programmable HTTP server on 127.0.0.1: the outside world the engine's steps call.

It records every request (method, path, headers, JSON body) so tests can count calls and
distinct Idempotency-Keys, tracks how many requests are in flight at once, and answers
from per-path handlers the test installs. It stops when its ``with`` block ends."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


Handler = Callable[[Request], tuple[int, Any]]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.handlers: dict[str, Handler] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                request = Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                status, payload = receiver._dispatch(request)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def _dispatch(self, request: Request) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            handler = self.handlers.get(request.path.split("?")[0])
            return handler(request) if handler else (404, {"error": "no handler"})
        finally:
            with self._lock:
                self.in_flight -= 1

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, handler: Handler) -> None:
        self.handlers[path] = handler

    def calls(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0] == path]

    def keys(self, path: str) -> set[str]:
        return {r.headers.get("idempotency-key", "") for r in self.calls(path)}

    def __enter__(self) -> Receiver:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def json_answer(payload: Any, *, delay_s: float = 0, status: int = 200) -> Handler:
    def handler(request: Request) -> tuple[int, Any]:
        if delay_s:
            time.sleep(delay_s)
        return status, payload

    return handler


def chat_completion(text: str) -> Handler:
    """An OpenAI-compatible /chat/completions answer (a self-hosted model's endpoint)."""
    return json_answer({
        "id": "cmpl-1", "object": "chat.completion", "model": "local-model",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    })  # fmt: skip
