"""Settings of the end-to-end test project. Everything that differs per run comes from the
environment, which tests/e2e/conftest.py sets (from what tests/e2e/run.sh prepared)."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "confronta-sync-e2e-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "confronta_sync_django",
    "telefonica",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "e2e_site.urls"
WSGI_APPLICATION = "e2e_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("E2E_DB_NAME", "cs_e2e"),
        "USER": os.environ.get("E2E_DB_USER", "root"),
        "PASSWORD": os.environ.get("E2E_DB_PASSWORD", ""),
        "HOST": os.environ.get("E2E_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("E2E_DB_PORT", "5432"),
        # Every view in a transaction, as many CRMs run: the file is saved during form.save()
        # and the row commits only when the view returns (tests/e2e/test_commit_lento.py).
        "ATOMIC_REQUESTS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Fast hashing: the test users log in many times.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "es"
TIME_ZONE = "Europe/Madrid"
USE_I18N = True
USE_TZ = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# Django saves confrontas here; the sidecar watches MEDIA_ROOT/confrontas/.
MEDIA_ROOT = os.environ.get("E2E_MEDIA_ROOT", str(BASE_DIR / "media"))
MEDIA_URL = "/media/"
# Uploads above FILE_UPLOAD_MAX_MEMORY_SIZE (Django's default, 2.5 MB) go through a temporary
# file here, which Django then renames into MEDIA_ROOT.
FILE_UPLOAD_TEMP_DIR = os.environ.get("E2E_UPLOAD_TMP") or None

CONFRONTA_SYNC_MINIO = {
    "ENDPOINT": os.environ.get("CONFRONTA_TEST_S3_ENDPOINT", "http://127.0.0.1:39200"),
    "ACCESS_KEY": os.environ.get("CONFRONTA_TEST_S3_ACCESS_KEY", ""),
    "SECRET_KEY": os.environ.get("CONFRONTA_TEST_S3_SECRET_KEY", ""),
    "BUCKET": os.environ.get("CONFRONTA_TEST_S3_BUCKET", "telefonica-crea-online"),
    "REGION": os.environ.get("CONFRONTA_TEST_S3_REGION", "us-east-1"),
}
# The sidecar as `manage.py migrar_confrontas_minio` runs it: the binary under test and the
# config conftest.py writes (defaults: confronta-sync on PATH, /etc/confronta-sync/config.toml).
CONFRONTA_SYNC_BINARIO = os.environ.get("CONFRONTA_SYNC_BIN", "confronta-sync")
CONFRONTA_SYNC_CONFIG = os.environ.get("E2E_SIDECAR_CONFIG", "/etc/confronta-sync/config.toml")
# The defaults, spelled out: the model, its agent field, and the URL names the app reverses.
CONFRONTA_SYNC_MODEL = "telefonica.VentaPortabilidad"
CONFRONTA_SYNC_AGENTE_FIELD = "agente"
CONFRONTA_SYNC_DETALLE_URL = "telefonica:detalle_venta_portabilidad"
CONFRONTA_SYNC_DETALLE_KWARG = "pk"
CONFRONTA_SYNC_DESCARGA_URL = "telefonica:descargar_confronta"
CONFRONTA_SYNC_RESUBIR_URL = "telefonica:resubir_confronta_minio"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": "WARNING"},
        "confronta_sync_django": {"handlers": ["stderr"], "level": "INFO"},
    },
}
