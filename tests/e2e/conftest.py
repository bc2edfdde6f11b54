"""Session fixtures of the end-to-end test: the Django project in tests/e2e/proyecto served by
gunicorn on 127.0.0.1, the confronta-sync binary running beside it on the same MEDIA_ROOT and
PostgreSQL database, and the S3 server that run.sh started (or was given).

run.sh prepares the environment: E2E_WORK (a scratch folder), E2E_DB_NAME (an empty database),
E2E_PG_URL, CONFRONTA_TEST_S3_*, CONFRONTA_SYNC_BIN, E2E_CHROMIUM, E2E_CHROMEDRIVER and
E2E_ARTIFACTS."""

import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
import testconfig  # noqa: E402  (the config template the Rust tests fill too)

HERE = Path(__file__).resolve().parent
PROYECTO = HERE / "proyecto"

REQUIRED = (
    "E2E_WORK",
    "E2E_DB_NAME",
    "E2E_PG_URL",
    "CONFRONTA_SYNC_BIN",
    "CONFRONTA_TEST_S3_ENDPOINT",
    "CONFRONTA_TEST_S3_ACCESS_KEY",
    "CONFRONTA_TEST_S3_SECRET_KEY",
    "CONFRONTA_TEST_S3_BUCKET",
)

USUARIOS = {
    # name: (groups, superuser)
    "agente1": ((), False),
    "agente2": ((), False),
    "backoffice1": (("backoffice",), False),
    "admin1": (("ADMINISTRADOR",), False),  # the Administrador group matches in any case
    "jefe": ((), True),
}


def pytest_configure(config):
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.exit(
            f"{', '.join(missing)} not set: run tests/e2e/run.sh, which prepares the database, "
            "the S3 server and the tools",
            returncode=2,
        )
    work = Path(os.environ["E2E_WORK"])
    for sub in ("media/confrontas", "upload-tmp", "sidecar", "logs", "pids", "descargas"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    pg = urlsplit(os.environ["E2E_PG_URL"])
    os.environ.update(
        E2E_MEDIA_ROOT=str(work / "media"),
        E2E_UPLOAD_TMP=str(work / "upload-tmp"),
        E2E_SIDECAR_CONFIG=str(work / "sidecar" / "config.toml"),
        E2E_DB_HOST=pg.hostname or "127.0.0.1",
        E2E_DB_PORT=str(pg.port or 5432),
        E2E_DB_USER=pg.username or "root",
        E2E_DB_PASSWORD=pg.password or "",
        DJANGO_SETTINGS_MODULE="e2e_site.settings",
    )
    sys.path.insert(0, str(PROYECTO))
    import django

    django.setup()


@dataclass
class Entorno:
    base_url: str
    work: Path
    media_root: Path
    artifacts: Path
    s3_endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    prefijo: str  # object-name prefix of this run, so a shared bucket stays tidy
    sidecar: "object"
    gunicorn: "object"
    chromium: str
    chromedriver: str

    def minio(self):
        return _minio()


def _minio():
    from minio import Minio

    url = urlsplit(os.environ["CONFRONTA_TEST_S3_ENDPOINT"])
    return Minio(url.netloc, access_key=os.environ["CONFRONTA_TEST_S3_ACCESS_KEY"],
                 secret_key=os.environ["CONFRONTA_TEST_S3_SECRET_KEY"],
                 secure=url.scheme == "https", region="us-east-1")


def _config_sidecar(work: Path, prefijo: str) -> Path:
    pg = urlsplit(os.environ["E2E_PG_URL"])
    auth = pg.username or "root"
    if pg.password:
        auth += f":{pg.password}"
    db_url = f"postgres://{auth}@{pg.hostname or '127.0.0.1'}:{pg.port or 5432}/{os.environ['E2E_DB_NAME']}"
    config = work / "sidecar" / "config.toml"
    placeholders = {
        "MEDIA_ROOT": work / "media", "DATABASE_URL": db_url,
        "S3_ENDPOINT": os.environ["CONFRONTA_TEST_S3_ENDPOINT"], "S3_BUCKET": os.environ["CONFRONTA_TEST_S3_BUCKET"],
        "S3_ACCESS_KEY": os.environ["CONFRONTA_TEST_S3_ACCESS_KEY"], "PREFIX": f"{prefijo}confrontas",
        "JOURNAL": work / "sidecar" / "journal.sqlite3",
    }
    # Defaults except what makes a test run quick: settle 100 ms, short retry backoff, and a
    # 5 MiB multipart threshold so the 5 MB confronta goes up in parts; and the allowed types.
    # The secret key comes from the environment (CONFRONTA_SYNC_SECRET_KEY), not a file.
    config.write_text(testconfig.render(placeholders, {
        "minio.secret_key_file": None,
        "watch.settle_ms": 100,
        "minio.region": "us-east-1",
        "minio.multipart_threshold_bytes": 5242880,
        "minio.part_size_bytes": 5242880,
        "pipeline.retry_initial_ms": 200,
        "pipeline.retry_max_s": 2,
        "log.level": "info",
        # Not the default (which allows TIFF and HEIC too): Django's form validator reads this
        # very file (CONFRONTA_SYNC_CONFIG), which test_rechazo.py shows.
        "validation.allowed_types": ["pdf", "jpg", "jpeg", "png"],
    }))
    # The sidecar refuses a config holding a database password that other users can read.
    config.chmod(0o600)
    return config


def _crear_usuarios():
    from django.contrib.auth.models import Group, User

    from apoyo import CLAVE

    for nombre, (grupos, superuser) in USUARIOS.items():
        user = User.objects.create_user(nombre, f"{nombre}@example.test", CLAVE)
        user.is_superuser = user.is_staff = superuser
        user.save()
        for grupo in grupos:
            user.groups.add(Group.objects.get_or_create(name=grupo)[0])


@pytest.fixture(scope="session")
def entorno():
    from django.core.management import call_command
    from django.db import connections

    from apoyo import Proceso, Sidecar, esperar, puerto_libre
    import requests

    work = Path(os.environ["E2E_WORK"])
    logs, pids = work / "logs", work / "pids"
    call_command("migrate", verbosity=0)
    _crear_usuarios()

    prefijo = f"e2e-{secrets.token_hex(4)}/"
    env = dict(os.environ)
    env["CONFRONTA_SYNC_SECRET_KEY"] = os.environ["CONFRONTA_TEST_S3_SECRET_KEY"]
    env.pop("RUST_LOG", None)
    env["NO_COLOR"] = "1"  # plain logs in the artifacts
    sidecar = Sidecar(os.environ["CONFRONTA_SYNC_BIN"], _config_sidecar(work, prefijo), env,
                      logs / "confronta-sync.log", pids)

    puerto = puerto_libre()
    base_url = f"http://127.0.0.1:{puerto}"
    gunicorn = Proceso(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "e2e_site.wsgi:application",
         "--bind", f"127.0.0.1:{puerto}", "--workers", "2", "--timeout", "60",
         "--access-logfile", "-", "--error-logfile", "-", "--no-control-socket"],
        env, logs / "gunicorn.log", pids, cwd=PROYECTO,
    )
    codigo = None
    try:
        gunicorn.iniciar()

        def responde():
            if not gunicorn.vivo():
                raise AssertionError(f"gunicorn exited\n{(logs / 'gunicorn.log').read_text()}")
            try:
                return requests.get(base_url + "/accounts/login/", timeout=5).status_code == 200
            except (requests.ConnectionError, requests.Timeout):
                # Not listening yet, or a worker still importing Django on a loaded machine.
                return False

        esperar(responde, 60, "gunicorn to answer")
        sidecar.iniciar()

        yield Entorno(
            base_url=base_url, work=work, media_root=work / "media",
            artifacts=Path(os.environ.get("E2E_ARTIFACTS", HERE / "artifacts")),
            s3_endpoint=os.environ["CONFRONTA_TEST_S3_ENDPOINT"].rstrip("/"),
            bucket=os.environ["CONFRONTA_TEST_S3_BUCKET"],
            access_key=os.environ["CONFRONTA_TEST_S3_ACCESS_KEY"],
            secret_key=os.environ["CONFRONTA_TEST_S3_SECRET_KEY"],
            prefijo=prefijo, sidecar=sidecar, gunicorn=gunicorn,
            chromium=os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"),
            chromedriver=os.environ.get("E2E_CHROMEDRIVER", "/usr/bin/chromedriver"),
        )
        codigo = sidecar.parar()
    finally:
        sidecar.parar()
        gunicorn.parar()
        connections.close_all()
        # This run's objects, when the bucket is shared with other tests.
        try:
            cliente, bucket = _minio(), os.environ["CONFRONTA_TEST_S3_BUCKET"]
            for obj in cliente.list_objects(bucket, prefix=prefijo, recursive=True):
                cliente.remove_object(bucket, obj.object_name)
        except Exception as e:  # cleanup only
            print(f"could not remove this run's objects: {e}")
    assert codigo == 0, f"confronta-sync exited with {codigo} on SIGTERM\n{sidecar.cola()}"
