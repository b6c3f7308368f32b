"""The partial HNSW index for 384-dimensional namespaces (hashing and MiniLM embedders); the same
statement as ``studio.memory.models.hnsw_index_sql(384)``, written out so this migration never
changes. Other dimensions get theirs from ``memory_index_ensure_task`` when first used."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("memory", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS memory_item_hnsw_384 ON memory_memoryitem "
            "USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dims = 384",
            reverse_sql="DROP INDEX IF EXISTS memory_item_hnsw_384",
        ),
    ]
