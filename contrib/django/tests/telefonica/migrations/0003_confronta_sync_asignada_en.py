# What `makemigrations telefonica` writes for confronta-sync-django 0.2: the time a file was
# assigned (`confronta_asignada_en`, the one column added) and the five sidecar fields made
# non-editable, which changes no SQL (`sqlmigrate telefonica 0003` shows only the ADD COLUMN).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('telefonica', '0002_confronta_minio'),
    ]

    operations = [
        migrations.AddField(
            model_name='ventaportabilidad',
            name='confronta_asignada_en',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='Confronta asignada en'),
        ),
        migrations.AlterField(
            model_name='ventaportabilidad',
            name='confronta_minio_object_name',
            field=models.CharField(blank=True, editable=False, max_length=500, null=True, verbose_name='Nombre Objeto MinIO Confronta'),
        ),
        migrations.AlterField(
            model_name='ventaportabilidad',
            name='confronta_minio_url',
            field=models.URLField(blank=True, editable=False, null=True, verbose_name='URL MinIO Confronta'),
        ),
        migrations.AlterField(
            model_name='ventaportabilidad',
            name='confronta_sha256',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, verbose_name='SHA-256 Confronta'),
        ),
        migrations.AlterField(
            model_name='ventaportabilidad',
            name='confronta_subido_a_minio',
            field=models.BooleanField(default=False, editable=False, verbose_name='Confronta Subido a MinIO'),
        ),
        migrations.AlterField(
            model_name='ventaportabilidad',
            name='confronta_sync_error',
            field=models.TextField(blank=True, editable=False, null=True, verbose_name='Motivo de rechazo de la confronta'),
        ),
    ]
