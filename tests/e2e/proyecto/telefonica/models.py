from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from confronta_sync_django.models import ConfrontaMinioMixin


class VentaPortabilidad(ConfrontaMinioMixin, models.Model):
    """The CRM's portability sale, cut down to what the confronta flow touches."""

    numero = models.CharField(max_length=50, blank=True, verbose_name=_("Número"))
    cliente = models.CharField(max_length=200, verbose_name=_("Cliente"))
    agente = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="ventas_portabilidad",
        verbose_name=_("Agente"),
    )
    estado_venta = models.CharField(max_length=30, default="registrada")
    confronta = models.FileField(
        upload_to="confrontas/", verbose_name=_("Confronta"), null=True, blank=True
    )

    def save(self, *args, **kwargs):
        if not self.numero:
            self.numero = f"PORTA-{timezone.now().strftime('%Y%m%d%H%M%S%f')}"
        super().save(*args, **kwargs)

    def __str__(self):
        return self.numero
