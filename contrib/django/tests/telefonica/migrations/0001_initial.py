# The sales table as the CRM has it before confronta-sync (no MinIO fields).
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="VentaPortabilidad",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("numero", models.CharField(blank=True, max_length=50)),
                ("cliente", models.CharField(max_length=200)),
                ("estado_venta", models.CharField(default="registrada", max_length=30)),
                ("confronta", models.FileField(blank=True, null=True, upload_to="confrontas/")),
                (
                    "agente",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="ventas_portabilidad",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
