"""Flows get a slug, made from their names, unique among a tenant's live flows."""

from django.db import migrations, models
from django.db.models import Q
from django.utils.text import slugify

SLUG_MAX = 80


def fill_slugs(apps, schema_editor):
    Flow = apps.get_model("flows", "Flow")
    taken: dict[int, set[str]] = {}
    for flow in Flow.objects.order_by("id").only("id", "tenant_id", "name", "deleted_at"):
        base = slugify(flow.name).strip("-") or "flow"
        slugs = taken.setdefault(flow.tenant_id, set())
        number = 1
        while True:
            suffix = f"-{number}" if number > 1 else ""
            slug = base[: SLUG_MAX - len(suffix)].rstrip("-") + suffix
            if flow.deleted_at is not None or slug not in slugs:
                break
            number += 1
        if flow.deleted_at is None:
            slugs.add(slug)
        Flow.objects.filter(pk=flow.pk).update(slug=slug)


class Migration(migrations.Migration):
    dependencies = [("flows", "0005_fk_indexes_covered")]

    operations = [
        migrations.AddField(
            model_name="flow",
            name="slug",
            field=models.SlugField(max_length=SLUG_MAX, default=""),
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
