"""The admin as a CRM would register it: with the companion's mixin on the default site, and a
plain ModelAdmin (the mixin is optional) on a second site."""

from django.contrib import admin

from confronta_sync_django.admin import ConfrontaSyncAdminMixin

from .models import VentaPortabilidad


@admin.register(VentaPortabilidad)
class VentaPortabilidadAdmin(ConfrontaSyncAdminMixin, admin.ModelAdmin):
    list_display = ["numero", "cliente"]


#: A CRM's admin that does not use the companion's mixin: only Django's defaults.
sitio_simple = admin.AdminSite(name="admin_simple")
sitio_simple.register(VentaPortabilidad, admin.ModelAdmin)
