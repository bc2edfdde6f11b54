"""The download view (the local file, or a redirect to a presigned MinIO URL) and the "mark for
re-upload" view. The fragments link the download view in every state: a local confronta is
never linked at its public /media/ URL, which would skip the permission rule.

Wire them as urls.py says. A user the rule does not allow gets Django's PermissionDenied, and
a venta that does not exist Django's Http404, so the CRM's own 403 and 404 pages answer; the
permission is decided first, so that a user who may not see a venta cannot learn from the
answer whether it exists."""

import logging
import posixpath

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from . import conf, minio_utils

logger = logging.getLogger("confronta_sync_django")


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
    """The venta's confronta, for those the rule allows (by default the owning agent,
    backoffice, Administrador and superusers): the local file itself while the sidecar has not
    moved it yet, else a redirect to a presigned MinIO URL. When there is nothing to hand out
    (refused, no confronta, the object missing, MinIO unreachable) the user goes back to the
    venta's detail page with a message saying why."""
    venta = _venta_permitida(request.user, venta_id, conf.regla_descarga())
    return _entregar(request, venta)


def _entregar(request, venta, intentos=2):
    if venta.confronta_rechazada:
        # The sidecar refused the file (type, size, virus) and put it in quarantine: it will
        # never be in MinIO, so say why and what to do instead of "being uploaded".
        _avisar(
            request, messages.ERROR,
            _("Confronta rechazada: %(motivo)s Suba una confronta nueva corrigiendo la venta.")
            % {"motivo": venta.motivo_rechazo_confronta},
        )
        return _volver_al_detalle(venta)
    if venta.confronta:
        # Local (new, or a correction not moved yet): the newest file is the one to show.
        nombre = venta.confronta.name
        try:
            archivo = venta.confronta.storage.open(nombre, "rb")
        except FileNotFoundError:
            # The sidecar moved (or refused) it since the row was read; once opened, the file
            # stays readable even if it is unlinked while it is sent.
            venta.refresh_from_db()
            if intentos > 1 and venta.confronta.name != nombre:
                return _entregar(request, venta, intentos - 1)
            if venta.confronta:
                logger.error("venta %s names %s, which is not on disk", venta.pk, nombre)
                _avisar(request, messages.ERROR,
                        _("No se encuentra el archivo de la confronta. Avise a soporte."))
                return _volver_al_detalle(venta)
            return _entregar(request, venta, 1)
        _registrar(request, venta, f"local={nombre}")
        return _respuesta_archivo(archivo, nombre)
    if not venta.confronta_en_minio:
        _avisar(request, messages.ERROR, _("Esta venta no tiene confronta."))
        return _volver_al_detalle(venta)
    return _redirigir_a_minio(request, venta)


def _respuesta_archivo(archivo, nombre):
    disposicion = _disposicion()
    respuesta = FileResponse(archivo, as_attachment=disposicion == "attachment",
                             filename=posixpath.basename(nombre))
    # Served from our origin: never let a browser sniff an uploaded file into HTML.
    respuesta["X-Content-Type-Options"] = "nosniff"
    return respuesta


def _disposicion():
    try:
        return conf.minio_settings().disposicion
    except ImproperlyConfigured:
        return "attachment"


def _redirigir_a_minio(request, venta):
    objeto = venta.confronta_minio_object_name
    if conf.minio_settings().verificar_objeto:
        try:
            existe = minio_utils.objeto_existe(objeto)
        except minio_utils.MinioNoDisponible as e:
            logger.error("MinIO unavailable while checking %s for venta %s: %s", objeto, venta.pk, e)
            _avisar(
                request, messages.ERROR,
                _("No se pudo contactar con MinIO para descargar la confronta. "
                  "Inténtelo más tarde."),
            )
            return _volver_al_detalle(venta)
        if not existe:
            logger.error("venta %s points at %s, which is not in the bucket", venta.pk, objeto)
            _avisar(
                request, messages.ERROR,
                _("El archivo de la confronta no se encuentra en MinIO (%(objeto)s). "
                  "Avise a soporte.") % {"objeto": objeto},
            )
            return _volver_al_detalle(venta)

    try:
        url = minio_utils.url_descarga(objeto, expires=conf.url_expira())
    except Exception:
        logger.exception("cannot presign %s for venta %s", objeto, venta.pk)
        _avisar(request, messages.ERROR,
                _("No se pudo generar el enlace de descarga de la confronta."))
        return _volver_al_detalle(venta)
    # The object, never the URL: the signature in it is a credential for its lifetime.
    _registrar(request, venta, f"object={objeto}")
    return redirect(url)


def _registrar(request, venta, que):
    """One INFO line per download handed out (seed plan 11.1: link generation is monitored)."""
    user = request.user
    logger.info("confronta download: user=%s (%s) venta=%s %s", user.pk, user.get_username(),
                venta.pk, que)


@never_cache
@login_required
def resubir_confronta_minio(request, venta_id):
    """POST: marks the venta's local confronta for upload (resets `confronta_subido_a_minio`).
    The confronta-sync sidecar does the upload; nothing is uploaded here. JSON answers."""
    if request.method != "POST":
        return JsonResponse({"error": _("Método no permitido")}, status=405)
    venta = _venta_permitida(request.user, venta_id, conf.regla_resubir())
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
                {"error": _("Confronta rechazada: %(motivo)s Hace falta subir una nueva.")
                 % {"motivo": venta.motivo_rechazo_confronta}},
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
