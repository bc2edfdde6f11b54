"""The download view (a redirect to a presigned MinIO URL) and the "mark for re-upload" view.

Wire them as urls.py says. A user the rule does not allow gets Django's PermissionDenied, and
a venta that does not exist Django's Http404, so the CRM's own 403 and 404 pages answer; the
permission is decided first, so that a user who may not see a venta cannot learn from the
answer whether it exists."""

import logging
from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from . import conf, minio_utils
from .permisos import puede_descargar_confronta, puede_resubir_confronta

logger = logging.getLogger("confronta_sync_django")

#: Validity of the URL the download view redirects to.
VALIDEZ_DESCARGA = timedelta(days=1)


def _volver_al_detalle(venta):
    return redirect(conf.url_detalle(venta.pk))


def _avisar(request, nivel, texto):
    # Without MessageMiddleware the message is lost, not the answer (the system checks report
    # the missing middleware: confronta_sync.W007).
    messages.add_message(request, nivel, texto, fail_silently=True)


def _venta_permitida(user, venta_id, regla):
    """The venta, if `regla` allows `user` to act on it. The rule is asked first, with
    `venta=None` when the id names no venta, so the answer (403 or 404) tells a user who may
    not see the venta nothing about its existence."""
    venta = conf.venta_model()._default_manager.filter(pk=venta_id).first()
    if not regla(user, venta):
        raise PermissionDenied
    if venta is None:
        raise Http404
    return venta


@never_cache
@login_required
def descargar_confronta(request, venta_id):
    """Redirects the owning agent, backoffice, Administrador or a superuser to a presigned
    MinIO URL valid for one day; anyone else gets 403. When the confronta is not (yet) in
    MinIO, says why with a message on the venta's detail page."""
    venta = _venta_permitida(request.user, venta_id, puede_descargar_confronta)

    if venta.confronta_rechazada:
        # The sidecar refused the file (type, size, virus) and put it in quarantine: it will
        # never be in MinIO, so say why and what to do instead of "being uploaded".
        _avisar(request, messages.ERROR,
            _("Confronta rechazada: %(motivo)s. Suba una confronta nueva corrigiendo la venta.")
            % {"motivo": venta.confronta_sync_error},
        )
        return _volver_al_detalle(venta)
    if not venta.confronta_en_minio:
        if venta.confronta:
            _avisar(request, messages.WARNING,
                _("La confronta todavía no está en MinIO: se está subiendo desde el servidor. "
                  "Vuelva a intentarlo en unos segundos."),
            )
        else:
            _avisar(request, messages.ERROR, _("Esta venta no tiene confronta en MinIO."))
        return _volver_al_detalle(venta)

    objeto = venta.confronta_minio_object_name
    if conf.minio_settings().verificar_objeto:
        try:
            existe = minio_utils.objeto_existe(objeto)
        except minio_utils.MinioNoDisponible as e:
            logger.error("MinIO unavailable while checking %s for venta %s: %s", objeto, venta.pk, e)
            _avisar(request, messages.ERROR,
                _("No se pudo contactar con MinIO para descargar la confronta. "
                  "Inténtelo más tarde."),
            )
            return _volver_al_detalle(venta)
        if not existe:
            logger.error("venta %s points at %s, which is not in the bucket", venta.pk, objeto)
            _avisar(request, messages.ERROR,
                _("El archivo de la confronta no se encuentra en MinIO (%(objeto)s). "
                  "Avise a soporte.") % {"objeto": objeto},
            )
            return _volver_al_detalle(venta)

    try:
        url = minio_utils.url_descarga(objeto, expires=VALIDEZ_DESCARGA)
    except Exception:
        logger.exception("cannot presign %s for venta %s", objeto, venta.pk)
        _avisar(request, messages.ERROR, _("No se pudo generar el enlace de descarga de la confronta."))
        return _volver_al_detalle(venta)
    return redirect(url)


@never_cache
@login_required
def resubir_confronta_minio(request, venta_id):
    """POST: marks the venta's local confronta for upload (resets `confronta_subido_a_minio`).
    The confronta-sync sidecar does the upload; nothing is uploaded here. JSON answers."""
    if request.method != "POST":
        return JsonResponse({"error": _("Método no permitido")}, status=405)
    venta = _venta_permitida(request.user, venta_id, puede_resubir_confronta)
    return _marcar_para_resubir(venta)


def _marcar_para_resubir(venta, intentos=2):
    if not venta.confronta:
        if venta.confronta_en_minio:
            return JsonResponse(
                {"error": _("La confronta ya está en MinIO y no queda archivo local que subir")},
                status=400,
            )
        if venta.confronta_rechazada:
            return JsonResponse(
                {"error": _("Confronta rechazada: %(motivo)s. Hace falta subir una nueva.")
                 % {"motivo": venta.confronta_sync_error}},
                status=400,
            )
        return JsonResponse({"error": _("No hay archivo confronta para subir")}, status=400)
    if not venta.confronta.storage.exists(venta.confronta.name):
        return JsonResponse(
            {"error": _("El archivo local %(nombre)s no existe") % {"nombre": venta.confronta.name}},
            status=400,
        )
    if not venta.marcar_confronta_para_resubir():
        # The row no longer names the file read above: the sidecar recorded or refused it, or
        # a correction replaced it, in between. Answer for the row as it is now.
        venta.refresh_from_db()
        if intentos > 1:
            return _marcar_para_resubir(venta, intentos - 1)
        return JsonResponse(
            {"error": _("La venta ha cambiado mientras se marcaba; vuelva a intentarlo.")},
            status=409,
        )
    return JsonResponse(
        {
            "success": True,
            "pendiente": True,
            "message": _(
                "Confronta marcada para subir; el servicio confronta-sync la subirá a MinIO."
            ),
        }
    )
