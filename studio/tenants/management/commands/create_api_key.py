from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from studio.tenants.models import Tenant
from studio.tenants.roles import Role
from studio.tenants.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant and print it (the only time it is shown)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("tenant", help="the tenant's slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--name", default="command line")

    def handle(self, *args, tenant: str, role: str, name: str, **options) -> None:
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"no tenant with slug {tenant!r}")
        try:
            issued = api_key_create(tenant=found, name=name, role=role)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(issued.raw_key)
