# The three indexes ConfrontaMinioMixin declares, as `makemigrations telefonica` wrote them,
# with migrations.AddIndex replaced by AgregarIndiceConfronta: CREATE INDEX CONCURRENTLY on
# PostgreSQL (the CRM keeps writing meanwhile; hence atomic = False), a plain CREATE INDEX on
# SQLite, and an index of the same name already made by packaging/sql/ is left as it is.

import confronta_sync_django.migraciones
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('telefonica', '0003_confronta_sync_asignada_en'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        confronta_sync_django.migraciones.AgregarIndiceConfronta(
            model_name='ventaportabilidad',
            index=confronta_sync_django.migraciones.IndiceConfronta(fields=['confronta'], name='telefonica_ventaportabilidad_confronta_idx'),
        ),
        confronta_sync_django.migraciones.AgregarIndiceConfronta(
            model_name='ventaportabilidad',
            index=confronta_sync_django.migraciones.IndiceConfronta(condition=models.Q(('confronta__isnull', False), confronta_sync_django.migraciones.Distinto(models.F('confronta'), '')), fields=['id'], name='telefonica_ventaportabilidad_confronta_pending_idx'),
        ),
        confronta_sync_django.migraciones.AgregarIndiceConfronta(
            model_name='ventaportabilidad',
            index=confronta_sync_django.migraciones.IndiceConfronta(fields=['confronta_minio_object_name'], name='telefonica_ventaportabilidad_confronta_object_idx'),
        ),
    ]
