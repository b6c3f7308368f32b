"""Flows get a slug, made from their names, unique among a tenant's live flows."""

from django.db import migrations, models
from django.db.models import Q

from flows.models import first_free_slug


def fill_slugs(apps, schema_editor):
    Flow = apps.get_model("flows", "Flow")
    taken: dict[int, set[str]] = {}  # tenant id → slugs of its live flows
    for flow in Flow.objects.order_by("id").only("id", "tenant_id", "name", "deleted_at"):
        slugs = taken.setdefault(flow.tenant_id, set())
        # A deleted flow's slug is not counted against live ones, nor they against it.
        slug = first_free_slug(flow.name, set() if flow.deleted_at is not None else slugs)
        if flow.deleted_at is None:
            slugs.add(slug)
        Flow.objects.filter(pk=flow.pk).update(slug=slug)


class Migration(migrations.Migration):
    dependencies = [("flows", "0005_fk_indexes_covered")]

    operations = [
        migrations.AddField(
            model_name="flow",
            name="slug",
            field=models.SlugField(max_length=80, default=""),
            preserve_default=False,
        ),
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="flow",
            constraint=models.UniqueConstraint(
                condition=Q(deleted_at__isnull=True), fields=("tenant", "slug"), name="flow_unique_slug"
            ),
        ),
    ]
