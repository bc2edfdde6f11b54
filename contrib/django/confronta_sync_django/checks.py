"""System checks: the settings and the venta model, reported by `manage.py check`.

A developer's laptop often has no MinIO settings: without them only the download view fails
(it cannot presign), so their absence is a warning (`confronta_sync.W001`) that never stops
`migrate`, `runserver` or `test`, and an error (`confronta_sync.E001`) only under
`check --deploy`, where a deployment must have them. A model without the sidecar's fields is an
error everywhere (E002–E004): the views and the mixin need them."""

from django.apps import apps
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.utils.translation import gettext as _

from . import conf
from .models import CAMPOS_SIDECAR



def _ayuda_minio() -> str:
    return _("see CONFRONTA_SYNC_MINIO in the confronta-sync-django README")


def _nos_toca(app_configs) -> bool:
    """`check app_label ...` names the apps to check: ours, or the venta model's app."""
    if app_configs is None:
        return True
    etiquetas = {c.label for c in app_configs}
    if "confronta_sync" in etiquetas:
        return True
    modelo = getattr(conf.settings, "CONFRONTA_SYNC_MODEL", conf.DEFAULT_MODEL)
    return modelo.split(".", 1)[0] in etiquetas


def _error_minio():
    try:
        conf.minio_settings()
    except ImproperlyConfigured as e:
        return str(e)
    return None


@checks.register()
def revisar_ajustes_minio(app_configs=None, **kwargs):
    if not _nos_toca(app_configs):
        return []
    error = _error_minio()
    if error is None:
        return []
    return [
        checks.Warning(
            error,
            hint=_("Downloads from MinIO will fail until it is set; %(ayuda)s. "
                   "`manage.py check --deploy` reports it as an error.") % {"ayuda": _ayuda_minio()},
            id="confronta_sync.W001",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def revisar_ajustes_minio_despliegue(app_configs=None, **kwargs):
    if not _nos_toca(app_configs):
        return []
    error = _error_minio()
    if error is None:
        return []
    return [checks.Error(error, hint=_ayuda_minio(), id="confronta_sync.E001")]


@checks.register(checks.Tags.models)
def revisar_modelo(app_configs=None, **kwargs):
    if not _nos_toca(app_configs) or not apps.ready:
        return []
    errores = []
    try:
        model = conf.venta_model()
    except ImproperlyConfigured as e:
        return [checks.Error(str(e), id="confronta_sync.E002")]
    for name in CAMPOS_SIDECAR + (conf.agente_field(),):
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            errores.append(
                checks.Error(
                    _("%(modelo)s has no field %(campo)r") % {"modelo": model._meta.label, "campo": name},
                    hint=_("inherit confronta_sync_django.models.ConfrontaMinioMixin, then run "
                           "`manage.py makemigrations %(app)s` and `migrate`")
                    % {"app": model._meta.app_label},
                    obj=model,
                    id="confronta_sync.E003",
                )
            )
    if not hasattr(model, "obtener_url_descarga_confronta"):
        errores.append(
            checks.Error(
                _("%(modelo)s does not inherit ConfrontaMinioMixin") % {"modelo": model._meta.label},
                obj=model,
                id="confronta_sync.E004",
            )
        )
    return errores
