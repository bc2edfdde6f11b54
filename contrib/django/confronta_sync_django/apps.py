"""The app's configuration: its label (`confronta_sync`) and the system checks it registers."""

from django.apps import AppConfig


class ConfrontaSyncConfig(AppConfig):
    name = "confronta_sync_django"
    label = "confronta_sync"
    verbose_name = "confronta-sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
