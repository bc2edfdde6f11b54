# Adds the columns the confronta-sync sidecar records on each venta: the seed plan's three MinIO
# fields, the SHA-256 of the uploaded bytes and the reason of a refused file. What
# `python manage.py makemigrations telefonica` writes once VentaPortabilidad inherits
# ConfrontaMinioMixin (the plan's own step); a table that already had the seed's three fields
# gets only the last two.
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
