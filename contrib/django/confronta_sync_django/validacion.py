"""What a confronta must be before Django accepts it: the rules the sidecar applies (seed plan
8.1), read from the sidecar's own configuration, checked the way the sidecar checks them, so
that an agent learns at once, in the form, what the sidecar would refuse seconds later.

The rules come from one place both sides share: the `[validation]` table of the sidecar's
config file (CONFRONTA_SYNC_CONFIG, which the Debian package makes readable by Django's user),
`allowed_types` and `max_bytes`, with the sidecar's defaults for keys it does not set. A CRM
whose Django cannot read that file sets CONFRONTA_SYNC_VALIDACION to the same two keys; where
both can be read, `manage.py check` says whether they agree (confronta_sync.E012).

The sidecar's order, from `src/validation.rs`: the size (`too_large`), an empty file
(`empty`), then, unless `allowed_types` is empty, the extension (`type_not_allowed`) and the
content's magic bytes (`content_not_allowed`, `content_unrecognised`). A virus scan, when the
sidecar has one, happens only there (`infected`).
"""

import functools
import logging
import os
import posixpath
from dataclasses import dataclass
from typing import Optional, Tuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation, ValidationError
from django.utils.deconstruct import deconstructible
from django.utils.text import get_valid_filename

from . import conf, motivos
from .tipos import BYTES_CABECERA, TIPOS_CONOCIDOS, extension_de, normalizar, tipo

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

logger = logging.getLogger("confronta_sync_django")

#: The sidecar's `[validation]` defaults (`ValidationConfig::default`).
TIPOS_POR_DEFECTO = ("pdf", "jpg", "jpeg", "png", "tif", "tiff", "heic")
MAX_BYTES_POR_DEFECTO = 50 * 1024 * 1024


@dataclass(frozen=True)
class Reglas:
    #: Allowed kinds, normalised (jpg, tif, heic) and without repeats; empty accepts any type.
    tipos: Tuple[str, ...]
    #: Largest size accepted; 0 means no limit.
    max_bytes: int
    #: Where they came from, for messages.
    origen: str

    def iguales(self, otras: "Reglas") -> bool:
        return set(self.tipos) == set(otras.tipos) and self.max_bytes == otras.max_bytes


def _reglas(crudas, origen: str) -> Reglas:
    if not isinstance(crudas, dict):
        raise ImproperlyConfigured(
            f"{origen} must be a table (a dict) of allowed_types and max_bytes")
    tipos = crudas.get("allowed_types", TIPOS_POR_DEFECTO)
    max_bytes = crudas.get("max_bytes", MAX_BYTES_POR_DEFECTO)
    if isinstance(tipos, str) or not all(isinstance(t, str) for t in tipos):
        raise ImproperlyConfigured(
            f"{origen}: allowed_types must be a list of strings, got {tipos!r}")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ImproperlyConfigured(
            f"{origen}: max_bytes must be a whole number >= 0, got {max_bytes!r}")
    normalizados = []
    for t in tipos:
        t = normalizar(t.lstrip("."))
        if t not in normalizados:
            normalizados.append(t)
    return Reglas(tuple(normalizados), max_bytes, origen)


POR_DEFECTO = _reglas({}, "the sidecar's defaults")


def reglas_del_ajuste() -> Optional[Reglas]:
    """CONFRONTA_SYNC_VALIDACION, or None when it is not set."""
    crudas = getattr(settings, "CONFRONTA_SYNC_VALIDACION", None)
    if crudas is None:
        return None
    return _reglas(crudas, "CONFRONTA_SYNC_VALIDACION")


def reglas_del_sidecar() -> Optional[Reglas]:
    """The `[validation]` table of the sidecar's config file, or None when Django cannot read
    the file (absent, or not readable by this user). Raises ImproperlyConfigured when the file
    is there but is not valid TOML or its table is malformed."""
    ruta = conf.config_sidecar()
    try:
        estado = os.stat(ruta)
        datos = _leer_toml(ruta, estado.st_mtime_ns, estado.st_size)
    except OSError:
        return None
    return _reglas(datos.get("validation", {}), f"[validation] of {ruta}")


@functools.lru_cache(maxsize=4)
def _leer_toml(ruta: str, mtime_ns: int, tamano: int) -> dict:
    # Cached per version of the file: an upload reads it once, not at every request.
    try:
        with open(ruta, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ImproperlyConfigured(f"{ruta} is not valid TOML: {e}") from e


def reglas_estrictas() -> Reglas:
    """The rules in force: CONFRONTA_SYNC_VALIDACION, else the sidecar's file, else the
    sidecar's defaults. Raises ImproperlyConfigured for a malformed source (the checks)."""
    return reglas_del_ajuste() or reglas_del_sidecar() or POR_DEFECTO


def reglas() -> Reglas:
    """The rules in force, for a request: a malformed source (which the checks report as
    confronta_sync.E011, and which stops the sidecar too) falls back to the defaults."""
    try:
        return reglas_estrictas()
    except ImproperlyConfigured as e:
        logger.error("confronta validation rules unreadable, using the sidecar's defaults: %s", e)
        return POR_DEFECTO


def motivo(nombre: str, tamano: int, cabecera: bytes, reglas: Reglas) -> Optional[str]:
    """The code the sidecar would refuse this file with, or None. `cabecera` is its first
    BYTES_CABECERA bytes."""
    if reglas.max_bytes and tamano > reglas.max_bytes:
        return motivos.TOO_LARGE
    if tamano == 0:
        return motivos.EMPTY
    if not reglas.tipos:
        return None
    if normalizar(extension_de(nombre)) not in reglas.tipos:
        return motivos.TYPE_NOT_ALLOWED
    clase = tipo(cabecera)
    if clase in reglas.tipos:
        return None
    if set(reglas.tipos) <= TIPOS_CONOCIDOS:
        # tipos.py tells these kinds exactly as the sidecar does.
        return motivos.CONTENT_NOT_ALLOWED if clase else motivos.CONTENT_UNRECOGNISED
    # An allowed type tipos.py has no complete rule for: refuse only what it is sure of (one
    # of the five, or an executable), and leave the rest to the sidecar.
    if clase in TIPOS_CONOCIDOS | {"exe", "elf"}:
        return motivos.CONTENT_NOT_ALLOWED
    return None


def mensaje(codigo: str, reglas: Reglas) -> str:
    """The Spanish message for a refusal, with the allowed types when the type was wrong."""
    texto = str(motivos.mensaje(codigo))
    if codigo in (motivos.TYPE_NOT_ALLOWED, motivos.CONTENT_NOT_ALLOWED,
                  motivos.CONTENT_UNRECOGNISED) and reglas.tipos:
        texto += " " + str(motivos.TIPOS_ADMITIDOS) % {
            "tipos": ", ".join(t.upper() for t in reglas.tipos)}
    return texto


@deconstructible(path="confronta_sync_django.validacion.ValidadorConfronta")
class ValidadorConfronta:
    """Refuses an upload the sidecar would refuse, with the Spanish message of its code (the
    ValidationError's `code`). ConfrontaMinioMixin runs it on every new file, so every
    ModelForm and the admin get it; use it in a plain Form as any validator:

        confronta = forms.FileField(validators=[ValidadorConfronta()])
    """

    def __call__(self, archivo):
        vigentes = reglas()
        codigo = motivo(_nombre_guardado(archivo), archivo.size, _cabecera(archivo), vigentes)
        if codigo is not None:
            raise ValidationError(mensaje(codigo, vigentes), code=codigo)

    def __eq__(self, otro):
        return isinstance(otro, ValidadorConfronta)

    def __hash__(self):
        return hash(ValidadorConfronta)


def _nombre_guardado(archivo) -> str:
    """The name as storage will save it (Django's `get_valid_name`: spaces to underscores, odd
    characters dropped), whose extension is the one the sidecar will see."""
    nombre = posixpath.basename(str(getattr(archivo, "name", "") or "").replace("\\", "/"))
    try:
        return get_valid_filename(nombre)
    except SuspiciousFileOperation:
        return nombre


def _cabecera(archivo) -> bytes:
    f = getattr(archivo, "file", None) or archivo
    posicion = f.tell()
    try:
        f.seek(0)
        cabecera = f.read(BYTES_CABECERA)
    finally:
        f.seek(posicion)
    return cabecera if isinstance(cabecera, bytes) else cabecera.encode()
