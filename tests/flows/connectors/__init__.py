"""What the connector tests share: a real HTTP server on 127.0.0.1 and a stand-in resolver.

The server is the "outside world" the connector talks to, over real sockets. It records
every request it receives (so a test can assert that a refused call never reached it, or
count distinct Idempotency-Keys), runs in a thread, and stops itself when its ``with``
block ends; its slow handler waits on the stop event, so no test outlives its server.

``FakeDNS`` replaces ``socket.getaddrinfo`` for a few made-up names, because the tests
have no network and DNS is the outside world; IP literals still go to the real resolver.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_HANDLER_MAX_S = 2.0


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not an access log."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.owner.requests.append(Received(self.command, self.path, headers, body))
        route = self.path.split("?", 1)[0]
        # The client may stop reading on purpose (size limit, timeout).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(route, headers, body)

    def _route(self, route: str, headers: dict[str, str], body: bytes) -> None:
        if route == "/echo":
            self._echo(headers, body)
        elif route == "/text":
            self._send(200, b"plain words", "text/plain; charset=utf-8")
        elif route == "/not-json":
            self._send(200, b"{oops", "application/json")
        elif route == "/schema":
            document = {"id": 1, "items": [{"name": "a"}, {"name": 2}]}
            self._send(200, json.dumps(document).encode(), "application/json")
        elif route == "/slow":
            self.server.owner.stopping.wait(SLOW_HANDLER_MAX_S)
            self._send(200, b"{}", "application/json")
        elif route == "/huge":
            self._huge()
        elif route == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(10 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"x" * 1024)
        elif route.startswith("/status/"):
            self._status(int(route.rsplit("/", 1)[1]))
        elif route.startswith("/redirect"):
            self._redirect(route)
        else:
            self._send(404, b"unknown route", "text/plain")

    def _echo(self, headers: dict[str, str], body: bytes) -> None:
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        document = {
            "method": self.command,
            "path": self.path,
            "json": parsed,
            "text": body.decode("utf-8", errors="replace"),
            "headers": headers,
        }
        self._send(200, json.dumps(document).encode(), "application/json")

    def _huge(self) -> None:
        """2 MB without a Content-Length, so only counting while streaming can stop it."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        chunk = b"y" * 65536
        for _ in range(32):
            self.wfile.write(chunk)

    def _status(self, status: int) -> None:
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "7")
        payload = b"status body:   no such\n widget" + b" padding" * 100
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _redirect(self, route: str) -> None:
        owner = self.server.owner
        targets = {
            "/redirect/echo": (302, "/echo?from=redirect"),
            "/redirect/see-other": (303, "/echo"),
            "/redirect/keep-method": (307, "/echo"),
            "/redirect/metadata": (302, "http://169.254.169.254/latest/meta-data/"),
            "/redirect/gopher": (302, "gopher://127.0.0.1:70/_stats"),
            "/redirect/loop": (302, "/redirect/loop"),
            "/redirect/elsewhere": (307, owner.elsewhere),
        }
        status, location = targets[route]
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalServer


class LocalServer:
    """A threaded HTTP(S) server on 127.0.0.1, on a free port, for one test."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.stopping = threading.Event()
        self.elsewhere = ""  # where /redirect/elsewhere points; set by the test
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05})

    def url(self, path: str, *, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class FakeDNS:
    """``socket.getaddrinfo`` for made-up names; counts lookups so a test can see re-resolution."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.table: dict[str, list[str]] = {}
        self.lookups: list[str] = []
        self.failures: dict[str, int] = {}

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name in self.failures:
            self.lookups.append(name)
            raise socket.gaierror(self.failures[name], "fake resolver failure")
        if name not in self.table:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        return [_addrinfo(address, int(port or 0)) for address in self.table[name]]


def _addrinfo(address: str, port: int) -> tuple:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
