from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from flows import services
from flows.models import RUN_FINISHED, Flow, Run


class Command(BaseCommand):
    help = "Start a run of a flow; with --wait, print each step as it progresses, then the outputs."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "flow", help="the flow's id, slug or name (with --tenant when several tenants have it)"
        )
        parser.add_argument("--tenant", help="the tenant's slug")
        parser.add_argument("--input", help="a JSON file with the run's inputs ('-' for standard input)")
        parser.add_argument(
            "--flow-version",
            dest="flow_version",
            default=None,
            help="a version number or 'draft' (default: the latest published)",
        )
        parser.add_argument("--wait", action="store_true", help="follow the run until it ends")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to follow it (default 600)")

    def handle(self, *args, flow: str, tenant: str | None, input: str | None, flow_version: str | None, wait: bool,
               timeout: float, **options) -> None:  # fmt: skip
        found = self._flow(flow, tenant)
        inputs = self._inputs(input)
        chosen = flow_version if flow_version in (None, "draft") else _int(flow_version, "--flow-version")
        try:
            run, _ = services.run_request(flow=found, version=chosen, inputs=inputs, trigger="manual")
        except services.RunRefused as exc:
            details = "; ".join(f"{d.get('field') or d.get('node') or d.get('edge')}: {d['message']}"
                                for d in exc.details)  # fmt: skip
            raise CommandError(f"{exc}{' (' + details + ')' if details else ''}") from None
        self.stdout.write(f"run {run.pk} of {found.name!r} started")
        if wait:
            self._follow(run, timeout)

    def _flow(self, ref: str, tenant: str | None) -> Flow:
        flows = Flow.objects.filter(deleted_at__isnull=True).select_related("tenant")
        if tenant:
            flows = flows.filter(tenant__slug=tenant)
        if ref.isdigit():
            matches = list(flows.filter(pk=int(ref)))
        else:  # a slug first (unique in a tenant), else a name
            matches = list(flows.filter(slug=ref)) or list(flows.filter(name=ref))
        if not matches:
            where = f" in tenant {tenant}" if tenant else ""
            raise CommandError(
                f"no flow {ref!r}{where}: give its id, slug or name ({self._some_slugs(flows)})"
            )
        if len(matches) > 1:
            tenants = sorted({flow.tenant.slug for flow in matches})
            raise CommandError(
                f"{len(matches)} flows are called {ref!r} (tenants {', '.join(tenants)}): give its id, or --tenant"
                if len(tenants) > 1 else f"{len(matches)} flows are called {ref!r}: give its id or slug"
            )  # fmt: skip
        return matches[0]

    @staticmethod
    def _some_slugs(flows) -> str:
        slugs = list(flows.order_by("slug").values_list("slug", flat=True)[:6])
        if not slugs:
            return "there are none"
        return "slugs: " + ", ".join(slugs[:5]) + (", …" if len(slugs) > 5 else "")

    def _inputs(self, path: str | None) -> dict:
        if path is None:
            return {}
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text()
            return json.loads(text)
        except OSError as exc:
            raise CommandError(f"--input: cannot read {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise CommandError(f"--input: {path} is not JSON ({exc})") from None

    def _follow(self, run: Run, timeout: float) -> None:
        seen: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            run.refresh_from_db()
            for step in run.steps.order_by("id"):
                if seen.get(step.node_id) != step.status:
                    seen[step.node_id] = step.status
                    extra = (
                        f" ({step.latency_ms:.0f} ms)"
                        if step.latency_ms is not None and step.finished_at
                        else ""
                    )
                    error = f": {step.error['message']}" if step.error and step.status == "failed" else ""
                    self.stdout.write(f"  {step.node_id:<24} {step.status}{extra}{error}")
            if run.status in RUN_FINISHED:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"run {run.pk} still {run.status} after {timeout:.0f} s")
            time.sleep(0.2)
        self.stdout.write(
            f"run {run.pk} {run.status} · tokens {run.tokens_in}/{run.tokens_out} · ${run.cost_usd}"
        )
        if run.error:
            self.stdout.write(f"error: {json.dumps(run.error)}")
        self.stdout.write(json.dumps(run.outputs, indent=2, ensure_ascii=False, default=str))
        if run.status != "succeeded":
            sys.exit(1)


def _int(value: str, name: str) -> int:
    if not value.isdigit():
        raise CommandError(f"{name} must be a number or 'draft', got {value!r}")
    return int(value)
