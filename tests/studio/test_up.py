"""`manage.py up` end to end: the embedded stack, supervised children, login, clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from studio.embedded import free_port, port_is_free
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.slow

_SERVICE_VARS = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "STUDIO_ENCRYPTION_KEY", "DJANGO_SETTINGS_MODULE"}


class Studio:
    """``manage.py up`` in a subprocess, its output collected line by line."""

    def __init__(self, data_dir: Path, port: int, *args: str, env: dict | None = None) -> None:
        base = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARS}
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--port", str(port), "--workers", "1", *args],
            cwd=ROOT,
            env={**base, "STUDIO_DATA_DIR": str(data_dir), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def healthy(self) -> dict | None:
        try:
            body = httpx.get(self.url + "/healthz", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if body["status"] == "ok" and body["workers"]["count"] >= 1 else None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise
        time.sleep(0.2)  # let the reader thread drain the last lines
        return self.proc.returncode


def process_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def login(url: str, username: str, password: str) -> httpx.Client:
    client = httpx.Client(base_url=url, follow_redirects=True, timeout=10)
    client.get("/login/")
    response = client.post(
        "/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": url + "/login/"},
    )
    assert response.status_code == 200
    assert str(response.url).endswith("/flows/"), response.text[:500]
    return client


def assert_a_flow_runs_on_its_workers(studio: Studio, data_dir: Path) -> None:
    """An API key from the command line (attaching to the running services), then a flow with a
    model step (the I/O worker) published and run through the API."""
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_VARS}
    made = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "demo", "--role", "builder"], cwd=ROOT,
        env={**env, "STUDIO_DATA_DIR": str(data_dir)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    api = httpx.Client(base_url=studio.url + "/api/v1", timeout=40,
                       headers={"Authorization": f"Bearer {made.stdout.strip().splitlines()[-1]}"})  # fmt: skip
    graph = {
        "schema": 1,
        "nodes": [
            {"id": "trigger", "type": "trigger", "config": {}},
            {
                "id": "ask",
                "type": "llm",
                "config": {
                    "provider": "scripted",
                    "model": "claude-haiku-4-5",
                    "prompt": "hi",
                    "script": {"responses": ["hello from the worker"]},
                },
            },
            {"id": "out", "type": "output", "config": {"mapping": {"said": "{{ nodes.ask.output.text }}"}}},
        ],
        "edges": [
            {"id": "a", "source": "trigger", "target": "ask"},
            {"id": "b", "source": "ask", "target": "out"},
        ],
    }
    starters = api.get("/flows/").json()["results"]
    assert sum(f["latest_version"] == 1 for f in starters) >= 2  # the starter templates, seeded and published
    summarize = next(f for f in starters if f["name"] == "Summarize with an LLM")
    demo = api.post(f"/flows/{summarize['id']}/runs/?wait=30", json={"inputs": {"text": "A long text."}})
    assert demo.json()["status"] == "succeeded", demo.text  # offline: the scripted provider answers
    flow = api.post("/flows/", json={"name": "smoke", "graph": graph}).json()
    assert api.post(f"/flows/{flow['id']}/publish/", json={}).status_code == 201
    run = api.post(f"/flows/{flow['id']}/runs/?wait=30", json={"inputs": {}})
    assert run.status_code == 200, run.text
    assert run.json()["outputs"] == {"said": "hello from the worker"}


def test_up_runs_the_studio_and_a_second_start_keeps_everything(tmp_path):
    data_dir = tmp_path / "studio-data"
    port = free_port()
    studio = Studio(data_dir, port)
    try:
        health = wait_for(studio.healthy, timeout=180, what="healthz reported all ok", proc=studio.proc)
        assert health["database"]["pgvector"]
        wait_for(lambda: "press Ctrl-C" in studio.output, timeout=30, what="the banner")
        passwords = dict(re.findall(r"^\s+(owner|builder|reviewer)\s+(\S+)$", studio.output, re.M))
        assert set(passwords) == {"owner", "builder", "reviewer"}
        kept = json.loads((data_dir / "logins.json").read_text())["users"]
        assert kept == passwords
        assert f"running at http://127.0.0.1:{port}/" in studio.output

        page = login(studio.url, "builder", passwords["builder"]).get("/flows/")
        assert "<h1>Flows</h1>" in page.text
        assert_a_flow_runs_on_its_workers(studio, data_dir)

        # A second studio on the same data dir is refused with one line.
        second = subprocess.run(
            [sys.executable, "manage.py", "up", "--port", str(free_port())],
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k not in _SERVICE_VARS},
                "STUDIO_DATA_DIR": str(data_dir),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 2
        assert second.stderr.strip().startswith("error: another studio (pid")

        # A child that dies is restarted.
        worker = next(
            p for p in psutil.Process(studio.proc.pid).children() if "worker" in " ".join(p.cmdline())
        )
        worker.kill()
        wait_for(lambda: "worker exited with status" in studio.output, timeout=20, what="the restart notice")
        wait_for(studio.healthy, timeout=90, what="healthz ok again after the restart")
        postgres_pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    finally:
        code = studio.stop()
    assert code == 0, studio.output[-3000:]
    assert "embedded services stopped" in studio.output
    wait_for(lambda: not process_alive(postgres_pid), timeout=10, what="PostgreSQL exited")
    assert port_is_free("127.0.0.1", port)  # the web server let go of its port

    again = Studio(data_dir, port)
    try:
        wait_for(again.healthy, timeout=120, what="healthz ok on the second start", proc=again.proc)
        wait_for(lambda: "press Ctrl-C" in again.output, timeout=30, what="the banner")
        assert "passwords in" in again.output and passwords["builder"] not in again.output
        login(again.url, "builder", passwords["builder"])  # same users, same passwords
    finally:
        assert again.stop() == 0, again.output[-3000:]


def test_a_busy_port_is_one_clear_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "up", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == f"CommandError: port {port} on 127.0.0.1 is already in use; choose another with --port"
    )


def test_an_unreachable_redis_is_one_clear_line():
    result = subprocess.run(
        [sys.executable, "manage.py", "up", "--port", str(free_port())],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("CommandError: cannot reach Redis at redis://127.0.0.1:1/0: ")
    assert len(result.stderr.strip().splitlines()) == 1
