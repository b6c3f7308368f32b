from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from studio.embedded import current_stack, port_is_free
from studio.env import redact_url
from studio.health import check_database, check_redis
from studio.supervisor import ChildSpec, Supervisor, web_argv, worker_argv


class Command(BaseCommand):
    help = "Start the studio: services (embedded unless URLs are given), migrations, seed, worker, beat, web."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000, help="port to serve on (default 8000)")
        parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
        parser.add_argument(
            "--io-threads",
            type=int,
            default=16,
            help="threads of the worker for model and HTTP calls (default 16)",
        )
        parser.add_argument("--no-seed", action="store_true", help="do not create the demo tenant and users")

    def handle(
        self, *args, host: str, port: int, workers: int, io_threads: int, no_seed: bool, **options
    ) -> None:
        try:
            code = self._run(host=host, port=port, workers=workers, io_threads=io_threads, seed=not no_seed)
        finally:
            stack = current_stack()
            if stack is not None:
                stack.stop()
                self.stdout.write("studio | embedded services stopped")
        if code:
            sys.exit(code)

    def _run(self, *, host: str, port: int, workers: int, io_threads: int, seed: bool) -> int:
        if workers < 1 or io_threads < 1:
            raise CommandError("--workers and --io-threads must be at least 1")
        if not port_is_free(host, port):
            raise CommandError(f"port {port} on {host} is already in use; choose another with --port")
        self._preflight()
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("studio | database migrated")
        logins = self._seed() if seed else None

        python = sys.executable
        data_dir: Path = settings.STUDIO_DATA_DIR
        celery = f"{python} -m celery -A studio".split()
        specs = [
            ChildSpec("web", web_argv(host=host, port=port)),
            ChildSpec("beat", [*celery, "beat", "--loglevel", "INFO",
                               "--schedule", str(data_dir / "celerybeat-schedule"),
                               "--pidfile", str(data_dir / "celerybeat.pid")]),
            ChildSpec("worker", worker_argv("studio@", queue=settings.CELERY_TASK_DEFAULT_QUEUE, pool="prefork",
                                            concurrency=workers)),
            # Model and HTTP calls wait on the network: many threads, timeouts enforced by the clients.
            ChildSpec("worker-io", worker_argv("studio-io@", queue=settings.CELERY_IO_QUEUE, pool="threads",
                                               concurrency=io_threads)),
        ]  # fmt: skip
        supervisor = Supervisor(specs, env=dict(os.environ), out=self.stdout)
        supervisor.install_signal_handlers()
        supervisor.start_all()
        shown = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
        url = f"http://{shown}:{port}/"
        if self._wait_until_serving(url, supervisor):
            self._banner(url, logins, data_dir)
        return supervisor.watch()

    def _preflight(self) -> None:
        database = check_database()
        if not database["ok"]:
            raise CommandError(
                f"cannot reach the database at {redact_url(settings.DATABASES['default']['HOST'])}: "
                f"{database['error']}"
            )
        redis = check_redis()
        if not redis["ok"]:
            raise CommandError(f"cannot reach Redis at {redact_url(settings.REDIS_URL)}: {redis['error']}")

    def _seed(self) -> dict | None:
        from studio.tenants.services import demo_seed

        logins = demo_seed()
        path = settings.STUDIO_DATA_DIR / "logins.json"
        if logins:
            self._seed_starter_flows()
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"tenant": "demo", "users": logins}, handle, indent=2)
        return logins

    def _seed_starter_flows(self) -> None:
        """The demo tenant starts with the starter templates as flows, published when valid."""
        from flows.services import starter_install
        from flows.starters import starter_list
        from studio.tenants.models import Membership

        owner = Membership.objects.select_related("tenant", "user").get(tenant__slug="demo", role="owner")
        for starter in starter_list():
            # No model key on this machine: the demo flows answer with the offline scripted
            # provider, so they run end to end; switching a node back is one setting.
            starter_install(tenant=owner.tenant, starter=starter, user=owner.user,
                            offline=not settings.ANTHROPIC_API_KEY, publish=True)  # fmt: skip

    def _wait_until_serving(self, url: str, supervisor: Supervisor, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not supervisor.stopping.is_set():
            try:
                urllib.request.urlopen(url + "healthz", timeout=2)
                return True
            except urllib.error.HTTPError:
                return True  # serving; a 503 only says a part is still coming up
            except OSError:
                time.sleep(0.3)
        return False

    def _banner(self, url: str, logins: dict | None, data_dir: Path) -> None:
        lines = ["", f"  Agent Flow Studio is running at {url}", f"  data: {data_dir}"]
        if logins:
            lines.append("  demo logins (tenant 'demo'; shown once, kept in logins.json in the data dir):")
            lines += [f"    {user:<9} {password}" for user, password in logins.items()]
        elif (data_dir / "logins.json").exists():
            lines.append(f"  demo logins: owner, builder, reviewer (passwords in {data_dir / 'logins.json'})")
        lines += ["  press Ctrl-C to stop", ""]
        self.stdout.write("\n".join(lines))
