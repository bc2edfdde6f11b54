"""The sales app of the tests: the CRM's VentaPortabilidad cut down to what the companion touches."""

from django.conf import settings
from django.db import models

from confronta_sync_django.models import ConfrontaMinioMixin


class VentaPortabilidad(ConfrontaMinioMixin, models.Model):
    """The CRM's sale, cut down to what the companion app touches."""

    numero = models.CharField(max_length=50, blank=True)
    cliente = models.CharField(max_length=200)
    agente = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="ventas_portabilidad")
    estado_venta = models.CharField(max_length=30, default="registrada")
    confronta = models.FileField(upload_to="confrontas/", null=True, blank=True)
