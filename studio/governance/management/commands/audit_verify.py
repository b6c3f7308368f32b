"""``manage.py audit_verify [tenant-slug …]``: check each tenant's audit chain (after chaining
the entries its runs recorded in the last seconds); exit 1 when one is broken, naming the first
entry that does not hold."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from studio.governance.audit import audit_verify_recorded
from studio.tenants.models import Tenant


class Command(BaseCommand):
    help = "Verify the hash chain of the audit log of some tenants (all when none is named)."

    def add_arguments(self, parser):
        parser.add_argument("tenants", nargs="*", metavar="tenant-slug")

    def handle(self, *args, **options):
        tenants = Tenant.objects.order_by("slug")
        if options["tenants"]:
            tenants = tenants.filter(slug__in=options["tenants"])
            missing = set(options["tenants"]) - {t.slug for t in tenants}
            if missing:
                raise CommandError(f"no tenant called {', '.join(sorted(missing))}")
        broken = 0
        for tenant in tenants:
            result = audit_verify_recorded(tenant_id=tenant.pk)
            if result.ok:
                tail = f" (last hash {result.last_hash[:16]}…)" if result.entries else ""
                self.stdout.write(f"{tenant.slug}: {result.entries:,} entries, chain intact{tail}")
            else:
                broken += 1
                self.stdout.write(f"{tenant.slug}: BROKEN at entry #{result.broken_seq}: {result.reason} "
                                  f"({result.entries:,} entries before it hold)")  # fmt: skip
        if broken:
            raise CommandError(f"{broken} tenant(s) with a broken audit chain")
