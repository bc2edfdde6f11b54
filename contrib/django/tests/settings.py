"""Settings of the companion app's tests: an in-memory SQLite database, a `telefonica` app like
the CRM's, MEDIA_ROOT in a temporary folder. MinIO is configured (presigning is computed locally,
so no server is needed); the tests that need "no MinIO settings" override them."""

import atexit
import shutil
import tempfile

SECRET_KEY = "confronta-sync-django-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "confronta_sync_django",
    "tests.telefonica",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "tests.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LANGUAGE_CODE = "es"
USE_I18N = True
USE_TZ = True
LOGIN_URL = "/accounts/login/"
MEDIA_ROOT = tempfile.mkdtemp(prefix="confronta-sync-django-tests-")
atexit.register(shutil.rmtree, MEDIA_ROOT, True)
MEDIA_URL = "/media/"
# Nothing listens on port 9: a test that reached the network would fail, not pass.
CONFRONTA_SYNC_MINIO = {
    "ENDPOINT": "http://127.0.0.1:9",
    "ACCESS_KEY": "clave-de-prueba",
    "SECRET_KEY": "secreto-de-prueba",
    "BUCKET": "telefonica-crea-online",
    "REGION": "us-east-1",
}
# The upload rules, as the sidecar's defaults: the tests do not depend on a sidecar config that
# may sit at /etc/confronta-sync/config.toml on the machine (tests/test_validacion.py reads
# files of its own).
CONFRONTA_SYNC_VALIDACION = {
    "allowed_types": ["pdf", "jpg", "jpeg", "png", "tif", "tiff", "heic"],
    "max_bytes": 52428800,
}
