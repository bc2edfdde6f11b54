"""System checks: the settings, the URL wiring and the venta model, reported by `manage.py check`.
Their texts are for developers and in English, like Django's own checks.

A developer's laptop often has no MinIO settings: without them only the download view fails
(it cannot presign), so their absence is a warning (`confronta_sync.W001`) that never stops
`migrate`, `runserver` or `test`, and an error (`confronta_sync.E001`) only under
`check --deploy`, where a deployment must have them. The URL wiring follows the same rule
(W005–W007, E005–E007 under --deploy): the rollout migrates before it wires the URLs, and an
error would stop that `migrate`. A model without the sidecar's fields is an error everywhere
(E002–E004): the views and the mixin need them."""

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import FileField
from django.urls import NoReverseMatch, Resolver404, resolve, reverse
from django.utils.module_loading import import_string

from . import conf, views
from .migraciones import indices_confronta
from .models import CAMPO_ARCHIVO, CAMPO_ASIGNADA, CAMPOS_SIDECAR

AYUDA_MINIO = "see CONFRONTA_SYNC_MINIO in the confronta-sync-django README"


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
            hint=f"Downloads from MinIO will fail until it is set; {AYUDA_MINIO}. "
                 f"`manage.py check --deploy` reports it as an error.",
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
    return [checks.Error(error, hint=AYUDA_MINIO, id="confronta_sync.E001")]


@checks.register(checks.Tags.models)
def revisar_modelo(app_configs=None, **kwargs):
    if not _nos_toca(app_configs) or not apps.ready:
        return []
    errores = []
    try:
        model = conf.venta_model()
    except ImproperlyConfigured as e:
        return [checks.Error(str(e), id="confronta_sync.E002")]
    for name in CAMPOS_SIDECAR + (CAMPO_ASIGNADA, conf.agente_field()):
        try:
            model._meta.get_field(name)
        except FieldDoesNotExist:
            errores.append(
                checks.Error(
                    f"{model._meta.label} has no field {name!r}",
                    hint=f"inherit confronta_sync_django.models.ConfrontaMinioMixin, then run "
                         f"`manage.py makemigrations {model._meta.app_label}` and `migrate`",
                    obj=model,
                    id="confronta_sync.E003",
                )
            )
    try:
        archivo = model._meta.get_field(CAMPO_ARCHIVO)
    except FieldDoesNotExist:
        archivo = None  # reported above
    if archivo is not None and not isinstance(archivo, FileField):
        errores.append(checks.Error(
            f"{model._meta.label}.{CAMPO_ARCHIVO} is a {type(archivo).__name__}, not a FileField",
            hint="the mixin follows the files assigned to it, and serves them, through Django's "
                 "FileField (an ImageField is one too)",
            obj=model,
            id="confronta_sync.E003",
        ))
    errores += problemas_de_indices(model)
    if not hasattr(model, "obtener_url_descarga_confronta"):
        errores.append(
            checks.Error(
                f"{model._meta.label} does not inherit ConfrontaMinioMixin",
                obj=model,
                id="confronta_sync.E004",
            )
        )
    return errores


def problemas_de_indices(model):
    """W008 when the model does not declare the indexes the mixin's Meta declares: a Meta of
    its own that does not inherit the mixin's drops them, and `makemigrations` then never
    writes them (or, after they were migrated, writes their removal)."""
    declarados = {(tuple(i.fields), str(i.condition)) for i in model._meta.indexes}
    faltan = [i for i in indices_confronta()
              if (tuple(i.fields), str(i.condition)) not in declarados]
    if not faltan:
        return []
    return [checks.Warning(
        ("%(modelo)s does not declare the index(es) on %(campos)s that the sidecar's queries "
          "need; without them each lookup of a file's row and each reconcile pass reads the "
          "whole table") % {"modelo": model._meta.label,
                            "campos": ", ".join("/".join(i.fields) for i in faltan)},
        hint=("a model with a Meta of its own inherits the mixin's: "
               "class Meta(ConfrontaMinioMixin.Meta); then `manage.py makemigrations`"),
        obj=model,
        id="confronta_sync.W008",
    )]


# --- URL wiring ---------------------------------------------------------------------------

#: An id to reverse the names with: the views and the CRM's detail page take the venta's id.
_ID_DE_PRUEBA = 1


def _misma_vista(func, vista) -> bool:
    """Whether `func` (as resolved, maybe wrapped by the CRM's own decorators) is `vista`."""
    while func is not None:
        if func is vista or (getattr(func, "__module__", None) == vista.__module__
                             and getattr(func, "__qualname__", None) == vista.__qualname__):
            return True
        func = getattr(func, "__wrapped__", None)
    return False


def _nombre_de(func) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}"


def _problemas_de_urls():
    """(id suffix, message, hint) for each configured name that does not reverse, or reverses
    to a URL another view serves."""
    problemas = []
    ayuda = ("see the URLs section of the confronta-sync-django README")
    for ajuste, nombre, vista in (
        ("CONFRONTA_SYNC_DESCARGA_URL", conf.descarga_url_name(), views.descargar_confronta),
        ("CONFRONTA_SYNC_RESUBIR_URL", conf.resubir_url_name(), views.resubir_confronta_minio),
    ):
        try:
            ruta = reverse(nombre, args=[_ID_DE_PRUEBA])
        except NoReverseMatch as e:
            problemas.append(("005", f"{ajuste} = {nombre!r} does not reverse with a venta id: {e}",
                              ayuda))
            continue
        try:
            servida_por = resolve(ruta).func
        except Resolver404:
            servida_por = None
        if not _misma_vista(servida_por, vista):
            problemas.append((
                "006",
                f"{ajuste} = {nombre!r} reverses to {ruta}, which {_nombre_de(servida_por)} "
                f"serves, not confronta_sync_django.views.{vista.__name__}",
                ("remove the old view's pattern (the seed plan's own %(vista)s) or give the "
                  "companion's view another name in %(ajuste)s")
                % {"vista": vista.__name__, "ajuste": ajuste},
            ))
    kwarg = conf.detalle_kwarg()
    try:
        conf.url_detalle(_ID_DE_PRUEBA)
    except NoReverseMatch as e:
        como = f"{kwarg}=<id>" if kwarg else "the id as a positional argument"
        problemas.append((
            "005",
            f"CONFRONTA_SYNC_DETALLE_URL = {conf.detalle_url_name()!r} does not reverse with "
            f"{como} (CONFRONTA_SYNC_DETALLE_KWARG = {kwarg!r}): {e}",
            ("name the CRM's venta detail page and the keyword its URL takes"),
        ))
    if not _tiene_message_middleware():
        problemas.append((
            "007",
            "MIDDLEWARE lacks django.contrib.messages.middleware.MessageMiddleware",
            ("the download view tells the user why it sent them back with a message; without "
              "the middleware the message is lost"),
        ))
    return problemas


def _tiene_message_middleware() -> bool:
    from django.contrib.messages.middleware import MessageMiddleware

    for ruta in getattr(settings, "MIDDLEWARE", None) or ():
        try:
            clase = import_string(ruta)
        except ImportError:
            continue
        if isinstance(clase, type) and issubclass(clase, MessageMiddleware):
            return True
    return False


@checks.register(checks.Tags.urls)
def revisar_urls(app_configs=None, **kwargs):
    if not _nos_toca(app_configs):
        return []
    return [checks.Warning(mensaje, hint=ayuda, id=f"confronta_sync.W{sufijo}")
            for sufijo, mensaje, ayuda in _problemas_de_urls()]


@checks.register(checks.Tags.urls, deploy=True)
def revisar_urls_despliegue(app_configs=None, **kwargs):
    if not _nos_toca(app_configs):
        return []
    return [checks.Error(mensaje, hint=ayuda, id=f"confronta_sync.E{sufijo}")
            for sufijo, mensaje, ayuda in _problemas_de_urls()]


# --- permission rules ---------------------------------------------------------------------

@checks.register()
def revisar_reglas(app_configs=None, **kwargs):
    """E009: a permission rule setting that does not name a callable (every download and
    re-upload would answer 500)."""
    if not _nos_toca(app_configs):
        return []
    errores = []
    for cargar in (conf.regla_descarga, conf.regla_resubir):
        try:
            cargar()
        except ImproperlyConfigured as e:
            errores.append(checks.Error(
                str(e), hint=("a dotted path to a function regla(user, venta) -> bool"),
                id="confronta_sync.E009"))
    return errores


@checks.register()
def revisar_url_expira(app_configs=None, **kwargs):
    """E010: a link lifetime S3 would refuse (every download from MinIO would fail)."""
    if not _nos_toca(app_configs):
        return []
    try:
        conf.url_expira()
    except ImproperlyConfigured as e:
        return [checks.Error(str(e), id="confronta_sync.E010")]
    return []


# --- the validation rules shared with the sidecar ------------------------------------------

def _reglas_y_errores():
    from . import validacion

    errores = []
    try:
        ajuste = validacion.reglas_del_ajuste()
    except ImproperlyConfigured as e:
        ajuste = None
        errores.append(checks.Error(str(e), id="confronta_sync.E011"))
    try:
        archivo = validacion.reglas_del_sidecar()
    except ImproperlyConfigured as e:
        archivo = None
        errores.append(checks.Error(
            str(e), hint="the sidecar refuses to start with it too", id="confronta_sync.E011"))
    return ajuste, archivo, errores


@checks.register()
def revisar_validacion(app_configs=None, **kwargs):
    """E011: a malformed source of the upload rules; E012: CONFRONTA_SYNC_VALIDACION and the
    sidecar's `[validation]` disagree (forms would accept what the sidecar refuses, or the
    reverse); W014: allowed types whose content Django cannot tell (it checks their extension
    only)."""
    if not _nos_toca(app_configs):
        return []
    from .tipos import TIPOS_CONOCIDOS
    from .validacion import POR_DEFECTO

    ajuste, archivo, avisos = _reglas_y_errores()
    if ajuste is not None and archivo is not None and not ajuste.iguales(archivo):
        avisos.append(checks.Error(
            f"CONFRONTA_SYNC_VALIDACION (allowed_types {list(ajuste.tipos)}, max_bytes "
            f"{ajuste.max_bytes}) differs from {archivo.origen} (allowed_types "
            f"{list(archivo.tipos)}, max_bytes {archivo.max_bytes})",
            hint="remove CONFRONTA_SYNC_VALIDACION (Django reads the sidecar's file) or make "
                 "them the same",
            id="confronta_sync.E012",
        ))
    vigentes = ajuste or archivo or POR_DEFECTO
    desconocidos = [t for t in vigentes.tipos if t not in TIPOS_CONOCIDOS]
    if desconocidos:
        avisos.append(checks.Warning(
            f"allowed types {desconocidos} ({vigentes.origen}): Django checks their extension "
            f"only; the sidecar also checks their content, so a file may pass the form and be "
            f"refused seconds later",
            id="confronta_sync.W014",
        ))
    return avisos


@checks.register(deploy=True)
def revisar_validacion_despliegue(app_configs=None, **kwargs):
    """W013: Django cannot read the sidecar's config and CONFRONTA_SYNC_VALIDACION is not set,
    so the form checks the sidecar's defaults, which may not be the rules in force."""
    if not _nos_toca(app_configs):
        return []
    ajuste, archivo, errores = _reglas_y_errores()
    if errores or ajuste is not None or archivo is not None:
        return []
    return [checks.Warning(
        f"Django cannot read the sidecar's config ({conf.config_sidecar()}) and "
        f"CONFRONTA_SYNC_VALIDACION is not set: uploads are checked against the sidecar's "
        f"default [validation] rules",
        hint="let Django's user read the file (the package gives it to group www-data), or "
             "set CONFRONTA_SYNC_VALIDACION to the sidecar's allowed_types and max_bytes",
        id="confronta_sync.W013",
    )]
