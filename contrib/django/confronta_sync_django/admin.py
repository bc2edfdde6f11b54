"""Admin helpers for the venta model: the sidecar's columns read-only, the confronta's state as a
column and a list filter, and a link to the permission-checked download view.

    from django.contrib import admin
    from confronta_sync_django.admin import ConfrontaSyncAdminMixin

    @admin.register(VentaPortabilidad)
    class VentaPortabilidadAdmin(ConfrontaSyncAdminMixin, admin.ModelAdmin):
        list_display = ["numero", "cliente", "estado_confronta_admin", "motivo_rechazo_admin"]
        list_filter = [EstadoConfrontaFilter]

The mixin adds the state column, the filter and the read-only display of the sidecar's columns
on its own when the ModelAdmin does not list them. Editing `confronta` (a new file) stays
possible: the model's save() marks it for upload like any other new file. A plain ModelAdmin
is safe too: the mixin's fields are not editable, so no admin form carries them.
"""

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import (
    CAMPOS_MIXIN,
    ESTADO_LOCAL,
    ESTADO_MINIO,
    ESTADO_RECHAZADA,
    ESTADOS_CONFRONTA,
    filtro_estado,
)
from .templatetags.confronta_sync import url_descarga_confronta

#: The mixin's fields, shown read-only on the change page (to superusers; the others see the
#: refusal's Spanish reason instead of `confronta_sync_error`). They are not editable anyway
#: (`editable=False`: no form carries them, this admin's or any other); listing them here only
#: shows them. `confronta` itself is Django's and stays editable.
CAMPOS_SOLO_LECTURA = CAMPOS_MIXIN


class EstadoConfrontaFilter(admin.SimpleListFilter):
    """En MinIO / local / rechazada / sin confronta."""

    title = _("estado de la confronta")
    parameter_name = "estado_confronta"

    def lookups(self, request, model_admin):
        return ESTADOS_CONFRONTA

    def queryset(self, request, queryset):
        valor = self.value()
        if valor in dict(ESTADOS_CONFRONTA):
            return queryset.filter(filtro_estado(valor))
        return queryset


class ConfrontaSyncAdminMixin:
    """For the venta's ModelAdmin (before admin.ModelAdmin)."""

    def get_readonly_fields(self, request, obj=None):
        propios = tuple(super().get_readonly_fields(request, obj))
        mostrados = CAMPOS_SOLO_LECTURA
        if not getattr(getattr(request, "user", None), "is_superuser", False):
            # The sidecar's own words may name a limit or a virus: support (superusers) reads
            # them, the others the Spanish reason.
            mostrados = tuple(c if c != "confronta_sync_error" else "motivo_rechazo_admin"
                              for c in mostrados)
        extra = tuple(c for c in mostrados if c not in propios)
        return propios + extra + ("descarga_confronta_admin",)

    def get_list_display(self, request):
        columnas = list(super().get_list_display(request))
        if "estado_confronta_admin" not in columnas:
            columnas.append("estado_confronta_admin")
        return columnas

    def get_list_filter(self, request):
        filtros = list(super().get_list_filter(request))
        if EstadoConfrontaFilter not in filtros:
            filtros.append(EstadoConfrontaFilter)
        return filtros

    @admin.display(description=_("Confronta"))
    def estado_confronta_admin(self, obj):
        estado = obj.estado_confronta
        texto = dict(ESTADOS_CONFRONTA)[estado]
        if estado == ESTADO_RECHAZADA:
            return format_html('<span class="confronta-rechazada">{}: {}</span>',
                               texto, obj.motivo_rechazo_confronta)
        return texto

    @admin.display(description=_("Motivo de rechazo"))
    def motivo_rechazo_admin(self, obj):
        return obj.motivo_rechazo_confronta

    @admin.display(description=_("Descargar confronta"))
    def descarga_confronta_admin(self, obj):
        # The companion's view, not the object's URL: it checks who asks and presigns a
        # short-lived link, where the stored URL needs credentials anyway.
        if obj is None or obj.pk is None:
            return "-"
        if obj.estado_confronta == ESTADO_MINIO:
            return format_html('<a href="{}">{}</a>', url_descarga_confronta(obj),
                               _("Descargar confronta"))
        if obj.estado_confronta == ESTADO_LOCAL:
            return _("Pendiente de subir a MinIO")
        return "-"
