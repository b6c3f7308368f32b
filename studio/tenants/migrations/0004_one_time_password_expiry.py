import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0003_membership_invite"),
    ]

    operations = [
        migrations.RenameField(model_name="passwordchangerequired", old_name="created_at", new_name="issued_at"),
        migrations.AlterField(model_name="passwordchangerequired", name="issued_at", field=models.DateTimeField()),
        migrations.AddField(
            model_name="passwordchangerequired",
            name="tenant",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to="tenants.tenant"
            ),
        ),
    ]
