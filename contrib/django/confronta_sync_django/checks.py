"""System checks: the settings and the venta model, reported by `manage.py check`."""

from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured

from . import conf
from .models import CAMPOS_SIDECAR


@checks.register()
def revisar_configuracion(app_configs=None, **kwargs):
    errores = []
    try:
        conf.minio_settings()
    except ImproperlyConfigured as e:
        errores.append(checks.Error(str(e), id="confronta_sync.E001"))
    try:
        model = conf.venta_model()
    except ImproperlyConfigured as e:
        errores.append(checks.Error(str(e), id="confronta_sync.E002"))
        return errores
    for name in CAMPOS_SIDECAR + (conf.agente_field(),):
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            errores.append(
                checks.Error(
                    f"{model._meta.label} has no field {name!r}",
                    hint="inherit confronta_sync_django.models.ConfrontaMinioMixin and add the "
                    "migration from `manage.py confronta_sync_migracion`",
                    id="confronta_sync.E003",
                )
            )
    if not hasattr(model, "obtener_url_descarga_confronta"):
        errores.append(
            checks.Error(
                f"{model._meta.label} does not inherit ConfrontaMinioMixin",
                id="confronta_sync.E004",
            )
        )
    return errores
