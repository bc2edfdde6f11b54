"""Shared helpers: users with the roles the permission rule knows, ventas in each state the
sidecar leaves them in (written the way the sidecar writes them: one UPDATE, not save())."""

from django.contrib.auth.models import Group, User
from django.core.files.base import ContentFile

from tests.telefonica.models import VentaPortabilidad

OBJETO = "confrontas/venta_PORTA-1_confronta_1_0123456789ab.pdf"


def usuario(nombre, grupos=(), superuser=False, activo=True):
    user = User.objects.create_user(nombre, password="clave", is_active=activo)
    user.is_superuser = user.is_staff = superuser
    user.save()
    for grupo in grupos:
        user.groups.add(Group.objects.get_or_create(name=grupo)[0])
    return user


def venta_local(agente, nombre="c.pdf", contenido=b"%PDF-1.4 prueba"):
    """A venta just saved by Django: its file under MEDIA_ROOT/confrontas/, not yet moved."""
    venta = VentaPortabilidad(cliente="Cliente", agente=agente, numero="PORTA-1")
    venta.confronta.save(nombre, ContentFile(contenido), save=False)
    venta.save()
    return venta


def mover_a_minio(venta, objeto=OBJETO):
    """What the sidecar's record does: one compare-and-set UPDATE."""
    VentaPortabilidad.objects.filter(pk=venta.pk, confronta=venta.confronta.name).update(
        confronta="", confronta_subido_a_minio=True, confronta_minio_object_name=objeto,
        confronta_minio_url=f"http://127.0.0.1:9/telefonica-crea-online/{objeto}",
        confronta_sha256="0123456789ab" + "0" * 52, confronta_sync_error=None,
    )
    return VentaPortabilidad.objects.get(pk=venta.pk)


def rechazar(venta, motivo="content application/x-executable is not in allowed_types"):
    """What the sidecar's refusal does: the row stops naming the path and says why."""
    VentaPortabilidad.objects.filter(pk=venta.pk, confronta=venta.confronta.name).update(
        confronta="", confronta_sync_error=motivo,
    )
    return VentaPortabilidad.objects.get(pk=venta.pk)
