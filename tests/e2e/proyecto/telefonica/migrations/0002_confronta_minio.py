# Adds the columns the confronta-sync sidecar records on each venta: the seed plan's three MinIO
# fields, the SHA-256 of the uploaded bytes and the reason of a refused file. Generated from confronta-sync-django's template
# (`python manage.py confronta_sync_migracion telefonica`); copy it into telefonica/migrations/.
#
# If your table already has the three MinIO fields (the seed plan's migration was applied),
# keep only the last two AddFields (or run the command with --solo-sha256).
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("telefonica", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="ventaportabilidad",
            name="confronta_minio_url",
            field=models.URLField(blank=True, null=True, verbose_name="URL MinIO Confronta"),
        ),
        migrations.AddField(
            model_name="ventaportabilidad",
            name="confronta_minio_object_name",
            field=models.CharField(
                blank=True, max_length=500, null=True, verbose_name="Nombre Objeto MinIO Confronta"
            ),
        ),
        migrations.AddField(
            model_name="ventaportabilidad",
            name="confronta_subido_a_minio",
            field=models.BooleanField(default=False, verbose_name="Confronta Subido a MinIO"),
        ),
        migrations.AddField(
            model_name="ventaportabilidad",
            name="confronta_sha256",
            field=models.CharField(
                blank=True, max_length=64, null=True, verbose_name="SHA-256 Confronta"
            ),
        ),
        migrations.AddField(
            model_name="ventaportabilidad",
            name="confronta_sync_error",
            field=models.TextField(
                blank=True, null=True, verbose_name="Motivo de rechazo de la confronta"
            ),
        ),
    ]
