from django.apps import AppConfig


class TelefonicaConfig(AppConfig):
    name = "telefonica"
    default_auto_field = "django.db.models.BigAutoField"
