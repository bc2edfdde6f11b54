"""Why a confronta was refused, in Spanish, from the code the sidecar writes.

When the sidecar refuses a file it writes `confronta_sync_error` as `<code>: <english detail>`
(contract B of issue 26), the code one of CODIGOS. The detail is for support: it may carry a
limit or a virus signature's name, so it is never shown to agents. A text without a known code
(an older sidecar) is shown as the generic MENSAJE_GENERICO.

The form validator (validacion.py) refuses with the same codes and the same messages.
"""

import re
from typing import Optional, Tuple

from django.utils.translation import gettext_lazy as _

TOO_LARGE = "too_large"
EMPTY = "empty"
TYPE_NOT_ALLOWED = "type_not_allowed"
CONTENT_NOT_ALLOWED = "content_not_allowed"
CONTENT_UNRECOGNISED = "content_unrecognised"
INFECTED = "infected"

#: The message for each code: what happened and what to do, with no internals.
MENSAJES = {
    TOO_LARGE: _("El archivo es demasiado grande."),
    EMPTY: _("El archivo está vacío."),
    TYPE_NOT_ALLOWED: _("Ese tipo de archivo no se admite."),
    CONTENT_NOT_ALLOWED: _("El contenido del archivo no es de un tipo admitido."),
    CONTENT_UNRECOGNISED: _("No se reconoce el contenido del archivo como un documento o una "
                            "imagen admitidos."),
    INFECTED: _("El archivo contiene un virus y se ha bloqueado."),
}
CODIGOS = tuple(MENSAJES)
#: For a reason without a known code.
MENSAJE_GENERICO = _("El archivo no se ha aceptado.")
#: Added to the type codes' messages where the allowed types are known.
TIPOS_ADMITIDOS = _("Tipos admitidos: %(tipos)s.")

_FORMA = re.compile(r"^([a-z_]+): (.*)$", re.S)


def separar(texto: Optional[str]) -> Tuple[Optional[str], str]:
    """`"too_large: 2000 bytes is over max_bytes (1000)"` -> `("too_large", "2000 bytes ...")`;
    a text without one of CODIGOS -> `(None, text)`."""
    if not texto:
        return None, ""
    encontrado = _FORMA.match(texto)
    if encontrado and encontrado.group(1) in MENSAJES:
        return encontrado.group(1), encontrado.group(2)
    return None, texto


def mensaje(codigo: Optional[str]) -> str:
    """The Spanish message for a code (the generic one for None or an unknown code)."""
    return MENSAJES.get(codigo, MENSAJE_GENERICO)


def mensaje_de_rechazo(texto: Optional[str]) -> str:
    """The message to show agents for a `confronta_sync_error` text."""
    return mensaje(separar(texto)[0])
