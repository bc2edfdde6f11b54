"""Settings of the companion app, read from Django settings on every use (so tests can override).

    CONFRONTA_SYNC_MINIO = {
        "ENDPOINT": "http://127.0.0.1:9000",   # the S3 API, as Django reaches it
        "ACCESS_KEY": "...",
        "SECRET_KEY": "...",
        "BUCKET": "telefonica-crea-online",
        "REGION": "us-east-1",
        # Optional:
        "PUBLIC_ENDPOINT": None,    # the S3 API as browsers reach it; presigned URLs are
                                    # signed for this host (default: ENDPOINT)
        "VERIFICAR_OBJETO": True,   # HEAD the object before redirecting to it
        "DISPOSICION": "attachment",  # or "inline": how the browser treats the download
        "TIMEOUT_S": 5,             # connect/read timeout of the HEAD request
    }
    CONFRONTA_SYNC_MODEL = "telefonica.VentaPortabilidad"
    CONFRONTA_SYNC_AGENTE_FIELD = "agente"
    CONFRONTA_SYNC_DETALLE_URL = "telefonica:detalle_venta_portabilidad"   # the CRM's detail page
    CONFRONTA_SYNC_DETALLE_KWARG = "pk"          # its keyword for the venta's id (None: positional)
    CONFRONTA_SYNC_DESCARGA_URL = "telefonica:descargar_confronta"         # the companion's views:
    CONFRONTA_SYNC_RESUBIR_URL = "telefonica:resubir_confronta_minio"      # namespace and names
    CONFRONTA_SYNC_PERMISO_DESCARGA = "confronta_sync_django.permisos.puede_descargar_confronta"
    CONFRONTA_SYNC_PERMISO_RESUBIR = "confronta_sync_django.permisos.puede_resubir_confronta"
                                                   # regla(user, venta) -> bool (a dotted path
                                                   # or the callable itself)
    CONFRONTA_SYNC_URL_EXPIRA = timedelta(minutes=10)   # validity of each presigned link
                                                   # (or seconds; 1 s to 7 days, the S3 limit)
    CONFRONTA_SYNC_BINARIO = "confronta-sync"      # the sidecar, for migrar_confrontas_minio
    CONFRONTA_SYNC_CONFIG = "/etc/confronta-sync/config.toml"   # its configuration, whose
                                                   # [validation] the upload validator reads
    CONFRONTA_SYNC_VALIDACION = None               # or {"allowed_types": [...], "max_bytes": N}
                                                   # when Django cannot read that file
                                                   # (validacion.py)
"""

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from typing import Optional

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils.module_loading import import_string

DEFAULT_MODEL = "telefonica.VentaPortabilidad"
DEFAULT_AGENTE_FIELD = "agente"
DEFAULT_DETALLE_URL = "telefonica:detalle_venta_portabilidad"
DEFAULT_DETALLE_KWARG = "pk"
DEFAULT_DESCARGA_URL = "telefonica:descargar_confronta"
DEFAULT_RESUBIR_URL = "telefonica:resubir_confronta_minio"


@dataclass(frozen=True)
class Endpoint:
    host: str  # host[:port], what the minio client takes
    secure: bool


@dataclass(frozen=True)
class MinioSettings:
    endpoint: Endpoint
    public_endpoint: Endpoint
    access_key: str
    secret_key: str
    bucket: str
    region: str
    verificar_objeto: bool
    disposicion: str
    timeout_s: float


def parse_endpoint(value: str, key: str) -> Endpoint:
    """`http://host:port` or `https://host` (a bare `host:port` means http)."""
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ImproperlyConfigured(
            f"CONFRONTA_SYNC_MINIO[{key!r}] must look like http://host:port, got {value!r}"
        )
    if parts.path not in ("", "/"):
        raise ImproperlyConfigured(
            f"CONFRONTA_SYNC_MINIO[{key!r}] must not have a path (MinIO serves the bucket at "
            f"the root), got {value!r}"
        )
    return Endpoint(host=parts.netloc, secure=parts.scheme == "https")


def minio_settings() -> MinioSettings:
    raw = getattr(settings, "CONFRONTA_SYNC_MINIO", None)
    if not isinstance(raw, dict):
        raise ImproperlyConfigured(
            "CONFRONTA_SYNC_MINIO is not set; see the confronta-sync-django README"
        )
    missing = [k for k in ("ENDPOINT", "ACCESS_KEY", "SECRET_KEY", "BUCKET") if not raw.get(k)]
    if missing:
        raise ImproperlyConfigured(f"CONFRONTA_SYNC_MINIO lacks {', '.join(missing)}")
    disposicion = raw.get("DISPOSICION", "attachment")
    if disposicion not in ("attachment", "inline"):
        raise ImproperlyConfigured(
            "CONFRONTA_SYNC_MINIO['DISPOSICION'] must be 'attachment' or 'inline'"
        )
    endpoint = parse_endpoint(raw["ENDPOINT"], "ENDPOINT")
    public = raw.get("PUBLIC_ENDPOINT")
    return MinioSettings(
        endpoint=endpoint,
        public_endpoint=parse_endpoint(public, "PUBLIC_ENDPOINT") if public else endpoint,
        access_key=raw["ACCESS_KEY"],
        secret_key=raw["SECRET_KEY"],
        bucket=raw["BUCKET"],
        region=raw.get("REGION") or "us-east-1",
        verificar_objeto=bool(raw.get("VERIFICAR_OBJETO", True)),
        disposicion=disposicion,
        timeout_s=float(raw.get("TIMEOUT_S", 5)),
    )


def venta_model():
    label = getattr(settings, "CONFRONTA_SYNC_MODEL", DEFAULT_MODEL)
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as e:
        raise ImproperlyConfigured(f"CONFRONTA_SYNC_MODEL = {label!r}: {e}") from e


def agente_field() -> str:
    return getattr(settings, "CONFRONTA_SYNC_AGENTE_FIELD", DEFAULT_AGENTE_FIELD)


def detalle_url_name() -> str:
    return getattr(settings, "CONFRONTA_SYNC_DETALLE_URL", DEFAULT_DETALLE_URL)


def detalle_kwarg() -> Optional[str]:
    return getattr(settings, "CONFRONTA_SYNC_DETALLE_KWARG", DEFAULT_DETALLE_KWARG)


def descarga_url_name() -> str:
    return getattr(settings, "CONFRONTA_SYNC_DESCARGA_URL", DEFAULT_DESCARGA_URL)


def resubir_url_name() -> str:
    return getattr(settings, "CONFRONTA_SYNC_RESUBIR_URL", DEFAULT_RESUBIR_URL)


def url_detalle(venta_id) -> str:
    """The CRM's detail page of a venta: CONFRONTA_SYNC_DETALLE_URL reversed with the id as
    CONFRONTA_SYNC_DETALLE_KWARG (positionally when that is None)."""
    kwarg = detalle_kwarg()
    if kwarg:
        return reverse(detalle_url_name(), kwargs={kwarg: venta_id})
    return reverse(detalle_url_name(), args=[venta_id])


def espacio_y_nombre(nombre_completo: str) -> "tuple[Optional[str], str]":
    """`"telefonica:descargar_confronta"` -> `("telefonica", "descargar_confronta")`: the
    namespace the companion's URLconf declares (its innermost one) and the pattern's name."""
    espacios, _, nombre = nombre_completo.rpartition(":")
    return espacios.rpartition(":")[2] or None, nombre


DEFAULT_PERMISO_DESCARGA = "confronta_sync_django.permisos.puede_descargar_confronta"
DEFAULT_PERMISO_RESUBIR = "confronta_sync_django.permisos.puede_resubir_confronta"


def _regla(ajuste: str, defecto: str):
    valor = getattr(settings, ajuste, defecto)
    if callable(valor):
        return valor
    try:
        regla = import_string(valor)
    except ImportError as e:
        raise ImproperlyConfigured(f"{ajuste} = {valor!r}: {e}") from e
    if not callable(regla):
        raise ImproperlyConfigured(f"{ajuste} = {valor!r} is not callable")
    return regla


def regla_descarga():
    """Who may download a venta's confronta: `regla(user, venta) -> bool` (venta None for an
    id that names no venta; see permisos.py)."""
    return _regla("CONFRONTA_SYNC_PERMISO_DESCARGA", DEFAULT_PERMISO_DESCARGA)


def regla_resubir():
    """Who may mark a venta's confronta for re-upload; same shape."""
    return _regla("CONFRONTA_SYNC_PERMISO_RESUBIR", DEFAULT_PERMISO_RESUBIR)


#: How long a presigned link lives. The view makes one per click, so it only has to outlast the
#: redirect and a slow start of the download; a short life limits what a leaked link (browser
#: history, a proxy's log, a forwarded message) gives away.
DEFAULT_URL_EXPIRA = timedelta(minutes=10)
#: S3's limit for a presigned URL.
URL_EXPIRA_MAXIMA = timedelta(days=7)


def url_expira() -> timedelta:
    """CONFRONTA_SYNC_URL_EXPIRA as a timedelta (a number is seconds), 1 s to 7 days."""
    valor = getattr(settings, "CONFRONTA_SYNC_URL_EXPIRA", DEFAULT_URL_EXPIRA)
    if isinstance(valor, (int, float)) and not isinstance(valor, bool):
        valor = timedelta(seconds=valor)
    if not isinstance(valor, timedelta) or not timedelta(seconds=1) <= valor <= URL_EXPIRA_MAXIMA:
        raise ImproperlyConfigured(
            f"CONFRONTA_SYNC_URL_EXPIRA = {valor!r} must be a timedelta or a number of seconds "
            f"from 1 s to 7 days (the S3 limit)"
        )
    return valor


#: The sidecar's executable, as `migrar_confrontas_minio` runs it: a name looked up on PATH or
#: an absolute path (the Debian package installs /usr/bin/confronta-sync).
DEFAULT_BINARIO = "confronta-sync"
#: The sidecar's configuration, as the Debian package installs it.
DEFAULT_CONFIG_SIDECAR = "/etc/confronta-sync/config.toml"


def binario() -> str:
    return getattr(settings, "CONFRONTA_SYNC_BINARIO", DEFAULT_BINARIO)


def config_sidecar() -> str:
    return getattr(settings, "CONFRONTA_SYNC_CONFIG", DEFAULT_CONFIG_SIDECAR)
