"""Runs' tenant and flow, and steps' run, lose the index Django gives every foreign key: indexes
that lead with them already serve those lookups (run_tenant_status, run_flow_recent,
steprun_unique_node), and each extra index is written for every run and every step checkpoint.

Dropped CONCURRENTLY, outside a transaction, so a busy studio keeps writing meanwhile; Django's
own AlterField would drop and re-add the foreign keys, re-checking every row under lock."""

import django.db.models.deletion
from django.db import migrations, models

# (index, table, column; the model's field: model, name, related name, target)
COVERED = [
    ("flows_run_flow_id_862649ec", "flows_run", "flow_id", "run", "flow", "runs", "flows.flow"),
    ("flows_run_tenant_id_8e567eeb", "flows_run", "tenant_id", "run", "tenant", "runs", "tenants.tenant"),
    ("flows_steprun_run_id_e6826be8", "flows_steprun", "run_id", "steprun", "run", "steps", "flows.run"),
]


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY refuses to run in a transaction

    dependencies = [
        ("flows", "0004_monthly_spend"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"',
                    reverse_sql=f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}" ON "{table}" ("{column}")',
                )
                for index, table, column, *_ in COVERED
            ],
            state_operations=[
                migrations.AlterField(
                    model_name=model,
                    name=name,
                    field=models.ForeignKey(
                        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name=related, to=to
                    ),
                )
                for *_, model, name, related, to in COVERED
            ],
        ),
    ]
