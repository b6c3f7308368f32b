"""``bench inbox``: review-created → message-at-client latency over ws/inbox/, next to raw Channels.

On one harness, in one command: an ASGI server (uvicorn, as ``up`` runs it) with N reviewer
websockets connected through ws/inbox/ (session cookies, origin checked), N more connected to a
plain Channels consumer (``inbox_asgi.RawChannelsConsumer``, served by the same process behind
the same middleware), and Celery workers.

(a) raw Channels fan-out, the baseline: messages sent to the plain consumers' group as the
    channel layer's ``group_send`` sends them (one PUBLISH of the serialized dict; the sync caller
    skips ``async_to_sync``'s event loop), each consumer encoding its own JSON with ``send_json``
    through Channels' own dispatch, at the given rate, timed from publish to each socket;
(b) the inbox: runs started at the same rate, each reaching an approval node on a worker, which
    creates a ReviewTask and publishes ``created`` after commit; timed from the review's creation
    (``ReviewTask.created_at``, before its commit) to each socket.

The two alternate in halves, so both see the same moments of a shared machine. Messages a
socket missed are then caught up through the API (GET reviews/?status=open with that reviewer's
session), as the page does on reconnect: "lost" counts what is still missing after that.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings

from studio.bench import (
    BenchError,
    Report,
    Row,
    Say,
    Target,
    WebServer,
    celery_workers,
    percentile,
    throwaway_tenant,
)

RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sizes:
    reviews: int  # reviews created (and raw events published) in all
    sockets: int  # connected reviewer websockets
    rate: float  # events per second, for both sides


FULL = Sizes(reviews=500, sockets=200, rate=5.0)
QUICK = Sizes(reviews=40, sockets=40, rate=10.0)


@dataclass
class Clients:
    """N websocket clients on an event loop in a thread of their own."""

    urls: list[str]  # one per socket
    origin: str
    cookies: list[str]  # one per socket
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    raw: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))  # seq → latencies (ms)
    created: list[dict[int, float]] = field(default_factory=list)  # per socket: review id → received at
    closed: int = 0
    _tasks: list = field(default_factory=list)

    def start(self) -> None:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.created = [{} for _ in self.cookies]
        asyncio.run_coroutine_threadsafe(self._connect_all(), self.loop).result(timeout=120)

    async def _connect_all(self) -> None:
        ready = [asyncio.Event() for _ in self.cookies]
        for index, (url, cookie) in enumerate(zip(self.urls, self.cookies, strict=True)):
            self._tasks.append(asyncio.ensure_future(self._client(index, url, cookie, ready[index])))
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), timeout=110)

    async def _client(self, index: int, url: str, cookie: str, ready: asyncio.Event) -> None:
        import websockets

        headers = {"Cookie": cookie, "Origin": self.origin}
        try:
            async with websockets.connect(url, additional_headers=headers, max_queue=None) as socket:
                async for message in socket:
                    now = time.time()
                    event = json.loads(message)
                    if event.get("type") == "inbox.ready":
                        ready.set()
                    elif event.get("event") == "raw":
                        self.raw[event["seq"]].append((now - event["sent"]) * 1000)
                    elif event.get("event") == "created":
                        self.created[index][event["review"]["id"]] = now
        except Exception:  # a socket that dropped is counted; its reviews are caught up below
            self.closed += 1
            ready.set()

    def stop(self) -> None:
        async def cancel() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(cancel(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)


class ClientProcess:
    """The clients in a process of their own, so that starting runs here (ORM work under the GIL)
    never delays their receiving: both sides of the comparison see an idle client process."""

    def __init__(self, *, urls: list[str], origin: str, cookies: list[str]) -> None:
        import multiprocessing

        from django.db import connections

        connections.close_all()  # no database connection crosses the fork
        context = multiprocessing.get_context("fork")
        self.conn, child = context.Pipe()
        self.proc = context.Process(target=_client_process, args=(urls, origin, cookies, child), daemon=True)
        self.proc.start()
        self.closed = 0
        self.raw: dict[int, list[float]] = {}
        self.created: list[dict[int, float]] = []

    def wait_connected(self, timeout: float = 150) -> None:
        if not self.conn.poll(timeout):
            raise BenchError(f"the websocket clients did not connect within {timeout:g} s")
        self.closed = self.conn.recv()["closed"]

    def stop(self) -> None:
        self.conn.send("stop")
        if not self.conn.poll(60):
            raise BenchError("the websocket clients did not report back")
        result = self.conn.recv()
        self.raw, self.created, self.closed = result["raw"], result["created"], result["closed"]
        self.proc.join(10)


def _client_process(urls: list[str], origin: str, cookies: list[str], conn) -> None:
    clients = Clients(urls=urls, origin=origin, cookies=cookies)
    clients.start()
    conn.send({"closed": clients.closed})
    conn.recv()  # "stop"
    clients.stop()
    conn.send({"raw": dict(clients.raw), "created": clients.created, "closed": clients.closed})


def _sessions(users) -> list[str]:
    """A logged-in session cookie per user, made as the login view would."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    cookies = []
    for user in users:
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session.session_key}")
    return cookies


def _paced(count: int, rate: float, action) -> None:
    started = time.monotonic()
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        action(index)


def run(*, quick: bool, say: Say) -> Report:
    from channels.layers import get_channel_layer
    from django.contrib.auth import get_user_model

    from flows import services as flow_services
    from studio.inbox.models import ReviewTask
    from studio.realtime import redis_channel, redis_client
    from studio.tenants.models import Membership
    from studio.tenants.roles import Role

    sizes = QUICK if quick else FULL
    report = Report(name="inbox", quick=quick)
    report.notes.append(f"channel layer: {settings.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1]}")
    users: list = []
    cookies: list[str] = []
    server = WebServer(say, app="studio.bench.inbox_asgi:application")
    with throwaway_tenant("bench-inbox") as tenant, celery_workers(say=say), server as web:
        try:
            User = get_user_model()
            for index in range(sizes.sockets):
                user = User.objects.create_user(username=f"{tenant.slug}-r{index}")
                Membership.objects.create(tenant=tenant, user=user, role=Role.REVIEWER)
                users.append(user)
            cookies = _sessions(users)
            doc = {"schema": 1, "nodes": [
                {"id": "trigger", "type": "trigger", "position": {"x": 0, "y": 0}, "config": {}},
                {"id": "check", "type": "approval", "position": {"x": 0, "y": 0},
                 "config": {"data": {"n": "{{ input.n }}"}}},
            ], "edges": [{"id": "e", "source": "trigger", "target": "check"}]}  # fmt: skip
            flow = flow_services.flow_create(tenant=tenant, name="bench approvals", graph=doc)
            flow_services.flow_publish(flow=flow)
            raw_group = f"bench-raw.{tenant.pk}"
            inbox_url = f"ws://127.0.0.1:{web.port}/ws/inbox/?tenant={tenant.pk}"
            raw_url = f"ws://127.0.0.1:{web.port}/ws/bench/raw/{raw_group}/"
            # Sockets 0..N-1 follow the inbox, N..2N-1 the plain consumer (with the same sessions).
            clients = ClientProcess(urls=[inbox_url] * sizes.sockets + [raw_url] * sizes.sockets,
                                    origin=web.url, cookies=cookies * 2)  # fmt: skip
            say(f"connecting {sizes.sockets} reviewer websockets and {sizes.sockets} plain Channels ones")
            clients.wait_connected()
            if clients.closed:
                report.fail(f"{clients.closed} of {2 * sizes.sockets} websockets closed while connecting")
            channel, layer = redis_channel(raw_group), get_channel_layer()
            runs = []

            def raw(index: int) -> None:
                message = {"type": "raw.event", "event": "raw", "seq": index, "sent": time.time()}
                redis_client().publish(channel, layer.serialize(message))

            def review(index: int) -> None:
                run, _ = flow_services.run_request(
                    flow=flow, version=None, inputs={"n": index}, trigger="api"
                )
                runs.append(run.pk)

            say("warming up: 5 runs, 5 raw events")
            _paced(5, sizes.rate, lambda i: raw(-1 - i))
            _paced(5, sizes.rate, review)
            _wait_reviews(runs, 5)
            warm_runs, runs[:] = list(runs), []
            half = sizes.reviews // 2
            for part in (0, 1):
                say(f"(a) raw Channels: {half} events at {sizes.rate:g}/s to {sizes.sockets} sockets")
                _paced(half, sizes.rate, lambda i, part=part: raw(part * half + i))
                say(f"(b) inbox: {half} runs reaching an approval at {sizes.rate:g}/s")
                _paced(half, sizes.rate, review)
            reviews = _wait_reviews(runs, len(runs))
            time.sleep(2.0)  # the last messages in flight
            clients.stop()

            created_at = {r.pk: r.created_at.timestamp() for r in reviews}
            warm_ids = set(ReviewTask.objects.filter(run_id__in=warm_runs).values_list("pk", flat=True))
            raw_ms = [ms for seq, values in clients.raw.items() if seq >= 0 for ms in values]
            inbox_sockets = clients.created[: sizes.sockets]
            inbox_ms = [
                (received - created_at[rid]) * 1000
                for per_socket in inbox_sockets
                for rid, received in per_socket.items()
                if rid in created_at
            ]
            missed = [set(created_at) - set(per_socket) for per_socket in inbox_sockets]
            missed_live = sum(len(m) for m in missed)
            raw_expected = sizes.sockets * 2 * half
            raw_lost = raw_expected - len(raw_ms)
            lost = _catch_up(web.url, cookies, missed) if missed_live else 0
            say(f"caught up {missed_live - lost} missed messages through the API")

            def pct(values: list[float], p: float) -> float | None:
                return percentile(values, p) if values else None

            raw_p50, raw_p95 = pct(raw_ms, 50), pct(raw_ms, 95)
            report.add(Row("raw_p50_ms", "raw Channels fan-out P50", raw_p50, "ms"))
            report.add(Row("raw_p95_ms", "raw Channels fan-out P95", raw_p95, "ms"))
            report.add(Row("raw_lost", "raw Channels messages lost", float(raw_lost), "msgs"))
            report.add(Row("inbox_p50_ms", "inbox created → client P50", pct(inbox_ms, 50), "ms",
                           baseline=raw_p50, baseline_label="raw P50"))  # fmt: skip
            report.add(Row("inbox_p95_ms", "inbox created → client P95", pct(inbox_ms, 95), "ms",
                           baseline=raw_p95, baseline_label="raw P95", targets=(Target("<=", 1.0),)))  # fmt: skip
            report.add(Row("inbox_missed_live", "inbox messages missed live", float(missed_live), "msgs"))
            report.add(Row("inbox_lost", "inbox messages lost after catch-up", float(lost), "msgs",
                           targets=(Target("<=", 0, on="value", unit="msgs"),)))  # fmt: skip
            stamps = sorted(created_at.values())
            gaps = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
            bunched = sum(1 for gap in gaps if gap < 50)
            report.figures["inbox_bunched_pct"] = round(100 * bunched / max(1, len(gaps)), 1)
            report.notes.append(
                f"reviews were created less than 50 ms after the previous one {bunched} times out of "
                f"{len(gaps)} (raw events are paced exactly): bunched events queue behind each other's fan-out"
            )
            report.runs = len(reviews) + len(warm_ids)
            report.notes.append(
                f"{sizes.reviews} reviews and {sizes.reviews} raw events at {sizes.rate:g}/s each, alternating in "
                f"halves, to {sizes.sockets} sockets each on one uvicorn process; inbox latency counts from the "
                "review's creation in the worker, so it includes its commit and the publish"
            )
        finally:
            say("deleting the benchmark users and tenant")
            from django.contrib.sessions.models import Session

            Session.objects.filter(session_key__in=[c.split("=", 1)[1] for c in cookies]).delete()
            get_user_model().objects.filter(pk__in=[u.pk for u in users]).delete()
    return report


def _wait_reviews(run_ids: list[int], count: int):
    from studio.inbox.models import ReviewTask

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        reviews = list(ReviewTask.objects.filter(run_id__in=run_ids))
        if len(reviews) >= count:
            return reviews
        time.sleep(0.2)
    raise BenchError(
        f"only {ReviewTask.objects.filter(run_id__in=run_ids).count()} of {count} reviews appeared"
    )


def _catch_up(url: str, cookies: list[str], missed: list[set[int]]) -> int:
    """What each socket missed, read back as the page does on reconnect; returns what is still missing."""
    lost = 0
    for cookie, missing in zip(cookies, missed, strict=True):
        if not missing:
            continue
        found: set[int] = set()
        request = urllib.request.Request(
            f"{url}/api/v1/reviews/?status=open&limit=1000", headers={"Cookie": cookie}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                found = {r["id"] for r in json.loads(response.read())["results"]}
        except OSError:
            pass
        lost += len(missing - found)
    return lost
