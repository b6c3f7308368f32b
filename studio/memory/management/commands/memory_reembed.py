"""``manage.py memory_reembed <tenant> <namespace> --embedder minilm``: move a namespace to another
embedder, in batches (each its own transaction), then switch the namespace to it."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from studio.memory import embedders, services
from studio.memory.models import MemoryNamespace


class Command(BaseCommand):
    help = (
        "Re-embed every item of a namespace with another embedder (hashing, minilm, or a JSON spec "
        "for an HTTP provider), in batches, then make it the namespace's embedder."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="tenant slug")
        parser.add_argument("namespace")
        parser.add_argument(
            "--embedder",
            required=True,
            help='"hashing", "minilm" or a JSON spec: {"kind": "http", "shape": "openai", "model": …, "dims": …}',
        )
        parser.add_argument("--batch", type=int, default=256, help="items per batch (default 256)")

    def handle(self, *args, tenant: str, namespace: str, embedder: str, batch: int, **options) -> None:
        ns = (
            MemoryNamespace.objects.select_related("tenant")
            .filter(tenant__slug=tenant, name=namespace)
            .first()
        )
        if ns is None:
            raise CommandError(f"tenant {tenant!r} has no memory namespace {namespace!r}")
        try:
            spec = embedders.normalize_spec(
                json.loads(embedder) if embedder.lstrip().startswith("{") else embedder
            )
        except (ValueError, embedders.EmbedderError) as exc:
            raise CommandError(f"--embedder: {exc}") from None
        if batch < 1:
            raise CommandError("--batch must be at least 1")
        # Searches during the move see only the items already in the namespace's current
        # dimension; with the same dimension they see a mix until the switch below.
        done, last_id = 0, 0
        while True:
            try:
                count, last_id = services.memory_reembed_batch(
                    namespace=ns, spec=spec, after_id=last_id, batch=batch
                )
            except embedders.EmbedderError as exc:
                raise CommandError(f"stopped after {done} item(s): {exc}") from None
            if not count:
                break
            done += count
            self.stdout.write(f"re-embedded {done} item(s)")
        services.memory_namespace_switch(namespace=ns, spec=spec)
        self.stdout.write(
            self.style.SUCCESS(f"{tenant}/{namespace}: {done} item(s) now use {embedders.spec_label(spec)}")
        )
