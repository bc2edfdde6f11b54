"""The admin as a CRM would register it, with the companion's mixin."""

from django.contrib import admin

from confronta_sync_django.admin import ConfrontaSyncAdminMixin

from .models import VentaPortabilidad


@admin.register(VentaPortabilidad)
class VentaPortabilidadAdmin(ConfrontaSyncAdminMixin, admin.ModelAdmin):
    list_display = ["numero", "cliente"]
