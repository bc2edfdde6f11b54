"""The whole loop over HTTP: Django saves a confronta, the sidecar moves it to S3 and records it,
the companion app's view hands out a presigned URL to those allowed, and a correction replaces
the object."""

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from minio.error import S3Error

from apoyo import (
    CAMPOS,
    Cliente,
    comprobar_movida,
    descargar,
    esperar,
    esperar_movida,
    fila,
    mensajes,
    pdf,
    sha256,
)

def objeto_existe(entorno, nombre):
    try:
        entorno.minio().stat_object(entorno.bucket, nombre)
        return True
    except S3Error as e:
        if e.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
            return False
        raise


@pytest.fixture
def agente1(entorno):
    return Cliente(entorno.base_url).entrar("agente1")


def test_the_projects_migrations_are_what_makemigrations_writes(entorno):
    """The project's 0002 migration adds the mixin's first five fields, 0003 the assignment
    time (and makes the five non-editable, which costs no SQL), and the model needs no further
    migration."""
    from io import StringIO

    from django.core.management import call_command
    from django.db.migrations.loader import MigrationLoader

    from confronta_sync_django.models import CAMPOS_MIXIN, CAMPOS_SIDECAR

    cargador = MigrationLoader(None)
    campos = {op.name for op in cargador.get_migration("telefonica", "0002_confronta_minio").operations}
    assert campos == set(CAMPOS_SIDECAR) - {"confronta"}
    tercera = cargador.get_migration("telefonica", "0003_confronta_sync_asignada_en")
    assert {op.name for op in tercera.operations} == set(CAMPOS_MIXIN)
    salida = StringIO()
    call_command("sqlmigrate", "telefonica", "0003", stdout=salida)
    sentencias = [linea for linea in salida.getvalue().splitlines()
                  if linea and not linea.startswith("--") and linea not in ("BEGIN;", "COMMIT;")]
    assert sentencias == ['ALTER TABLE "telefonica_ventaportabilidad" ADD COLUMN '
                          '"confronta_asignada_en" timestamp with time zone NULL;'], sentencias
    call_command("makemigrations", "telefonica", check=True, dry_run=True, verbosity=0)
    # The app's system checks accept the settings and the model.
    call_command("check", fail_level="WARNING")


INDICES = {
    "telefonica_ventaportabilidad_confronta_idx": "(confronta)",
    "telefonica_ventaportabilidad_confronta_pending_idx":
        "(id) WHERE ((confronta IS NOT NULL) AND ((confronta)::text <> ''::text))",
    "telefonica_ventaportabilidad_confronta_object_idx": "(confronta_minio_object_name)",
}


def indices_validos():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
            "WHERE t.relname = 'telefonica_ventaportabilidad' AND c.relname = ANY(%s)",
            [list(INDICES)])
        return {nombre: (valido, definicion) for nombre, valido, definicion in cursor.fetchall()}


def test_the_migration_builds_the_sidecars_indexes_concurrently(entorno):
    """The three indexes exist, valid, as packaging/sql/ defines them; PostgreSQL uses each for
    the sidecar's query; migrating them again takes an index the packaged SQL made as it is and
    rebuilds one that a failed CONCURRENTLY build left invalid."""
    from django.core.management import call_command
    from django.contrib.auth.models import User
    from django.db import connection

    from telefonica.models import VentaPortabilidad

    encontrados = indices_validos()
    for nombre, columnas in INDICES.items():
        assert encontrados[nombre][0] is True, encontrados
        assert encontrados[nombre][1].endswith(f"USING btree {columnas}"), encontrados[nombre]

    consultas = {  # the sidecar's statements (src/db/mod.rs)
        "telefonica_ventaportabilidad_confronta_idx":
            "SELECT id FROM telefonica_ventaportabilidad WHERE confronta = 'confrontas/x.pdf'",
        "telefonica_ventaportabilidad_confronta_pending_idx":
            "SELECT id FROM telefonica_ventaportabilidad WHERE confronta IS NOT NULL AND "
            "confronta <> '' AND substr(confronta, 1, 11) = 'confrontas/' AND id > 0 "
            "ORDER BY id LIMIT 100",
        "telefonica_ventaportabilidad_confronta_object_idx":
            "SELECT 1 FROM telefonica_ventaportabilidad "
            "WHERE confronta_minio_object_name = 'confrontas/x.pdf' LIMIT 1",
    }
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for nombre, sql in consultas.items():
                cursor.execute("EXPLAIN " + sql)
                plan = " ".join(fila[0] for fila in cursor.fetchall())
                assert nombre in plan, plan
        finally:
            cursor.execute("RESET enable_seqscan")

    agente = User.objects.get(username="agente2")
    for cliente in ("Sin confronta 1", "Sin confronta 2"):
        VentaPortabilidad.objects.create(cliente=cliente, agente=agente, estado_venta="igual")
    call_command("migrate", "telefonica", "0003", verbosity=0)
    try:
        assert indices_validos() == {}
        paquete = (Path(__file__).resolve().parents[2] / "packaging" / "sql"
                   / "add_confronta_pending_index.sql").read_text()
        sentencia = re.search(r"^CREATE INDEX CONCURRENTLY[^;]*", paquete, re.M).group(0)
        with connection.cursor() as cursor:
            cursor.execute(sentencia)
            # A CONCURRENTLY build that fails (here: not unique) leaves an invalid index.
            try:
                cursor.execute("CREATE UNIQUE INDEX CONCURRENTLY "
                               "telefonica_ventaportabilidad_confronta_object_idx "
                               "ON telefonica_ventaportabilidad (estado_venta)")
            except Exception:
                pass
        assert indices_validos()["telefonica_ventaportabilidad_confronta_object_idx"][0] is False
    finally:
        call_command("migrate", "telefonica", verbosity=0)
    encontrados = indices_validos()
    for nombre, columnas in INDICES.items():
        assert encontrados[nombre][0] is True, encontrados
        assert encontrados[nombre][1].endswith(f"USING btree {columnas}"), encontrados[nombre]


def test_sidecar_check_accepts_the_django_table(entorno):
    resultado = entorno.sidecar.comando("check")
    assert resultado.returncode == 0, resultado.stdout + resultado.stderr


def test_small_confronta_in_memory_upload(entorno, agente1):
    contenido = pdf("confronta pequena")
    subida = agente1.crear_venta("Cliente Pequeño", "confronta pequeña.PDF", contenido)
    assert subida.clase == "InMemoryUploadedFile"
    assert subida.guardado.startswith("confrontas/")
    f = comprobar_movida(entorno, subida, contenido)

    # The detail page links the download view and says where the file is.
    html = agente1.detalle(subida.venta_id)
    assert "Archivo almacenado en MinIO" in html and "Archivo local" not in html
    assert f'href="/telefonica/venta/{subida.venta_id}/descargar-confronta/"' in html
    assert "Descargar Confronta" in html

    # The owner is sent to a presigned URL, valid ten minutes, that serves the exact bytes.
    url, r = descargar(agente1, subida.venta_id)
    assert url.startswith(f"{entorno.s3_endpoint}/{entorno.bucket}/{f['confronta_minio_object_name']}?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == ["600"] and "X-Amz-Signature" in query
    # Django logged the download (who, which venta, which object), never the signed URL.
    registro = (entorno.work / "logs" / "gunicorn.log").read_text()
    linea = f"venta={subida.venta_id} object={f['confronta_minio_object_name']}"
    assert any(l.startswith("confronta download: user=") and l.endswith(linea)
               for l in registro.splitlines()), registro[-2000:]
    assert query["X-Amz-Signature"][0] not in registro
    assert r.status_code == 200 and r.content == contenido
    nombre = f["confronta_minio_object_name"].rsplit("/", 1)[1]
    assert r.headers.get("Content-Disposition") == f'attachment; filename="{nombre}"'


@pytest.mark.parametrize("usuario", ["backoffice1", "admin1", "jefe"])
def test_backoffice_administrador_and_superuser_may_download(entorno, agente1, usuario):
    contenido = pdf(f"para {usuario}")
    subida = agente1.crear_venta("Cliente", "c.pdf", contenido)
    comprobar_movida(entorno, subida, contenido)
    _, r = descargar(Cliente(entorno.base_url).entrar(usuario), subida.venta_id)
    assert r.status_code == 200 and r.content == contenido


def test_other_agent_gets_403_and_anonymous_the_login(entorno, agente1):
    contenido = pdf("ajena")
    subida = agente1.crear_venta("Cliente", "ajena.pdf", contenido)
    comprobar_movida(entorno, subida, contenido)
    ruta = f"/telefonica/venta/{subida.venta_id}/descargar-confronta/"
    r = Cliente(entorno.base_url).entrar("agente2").get(ruta)
    assert r.status_code == 403
    assert "Location" not in r.headers and "X-Amz" not in r.text
    r = Cliente(entorno.base_url).get(ruta)
    assert r.status_code == 302 and r.headers["Location"].startswith("/accounts/login/")


def test_five_megabyte_confronta_temporary_file_upload(entorno, agente1):
    contenido = pdf("confronta grande", relleno=5 * 1024 * 1024 + 4321)
    assert len(contenido) > 5 * 1024 * 1024
    subida = agente1.crear_venta("Cliente Grande", "escaneo grande.pdf", contenido)
    assert subida.clase == "TemporaryUploadedFile"
    comprobar_movida(entorno, subida, contenido)
    _, r = descargar(agente1, subida.venta_id)
    assert r.status_code == 200 and sha256(r.content) == sha256(contenido)


def test_name_collision_and_local_files_while_the_sidecar_is_stopped(entorno, agente1):
    """With the sidecar stopped, two uploads of the same name both stay local (Django adds its
    random suffix to the second); the pages say "Archivo local"; the download view serves the
    local file; resubir only marks. Started again, the sidecar moves both."""
    from telefonica.models import VentaPortabilidad

    assert entorno.sidecar.parar() == 0, entorno.sidecar.cola()
    backoffice = Cliente(entorno.base_url).entrar("backoffice1")
    try:
        primero, segundo = pdf("duplicada uno"), pdf("duplicada dos")
        a = agente1.crear_venta("Cliente A", "confronta_dup.pdf", primero)
        b = agente1.crear_venta("Cliente B", "confronta_dup.pdf", segundo)
        assert a.guardado == "confrontas/confronta_dup.pdf"
        assert re.fullmatch(r"confrontas/confronta_dup_[A-Za-z0-9]{7}\.pdf", b.guardado), b.guardado
        assert (entorno.media_root / a.guardado).read_bytes() == primero
        assert (entorno.media_root / b.guardado).read_bytes() == segundo
        assert not fila(a.venta_id)["confronta_subido_a_minio"]

        html = agente1.detalle(a.venta_id)
        assert "Archivo local" in html and "Archivo almacenado en MinIO" not in html
        descarga = f"/telefonica/venta/{a.venta_id}/descargar-confronta/"
        assert f'href="{descarga}"' in html and "/media/" not in html

        # Not in MinIO yet: the download view serves the local file, to those the rule allows.
        r = agente1.get(descarga)
        assert r.status_code == 200 and r.content == primero, r.status_code
        assert r.headers["Content-Disposition"] == 'attachment; filename="confronta_dup.pdf"'
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert Cliente(entorno.base_url).entrar("agente2").get(descarga).status_code == 403
        # And nothing serves it at a public URL.
        assert agente1.get(f"/media/{a.guardado}").status_code == 404

        # resubir: POST only, backoffice only, and it only resets the flag.
        ruta = f"/telefonica/venta/{a.venta_id}/resubir-confronta-minio/"
        assert backoffice.get(ruta).status_code == 405
        assert agente1.post(ruta).status_code == 403
        VentaPortabilidad.objects.filter(pk=a.venta_id).update(confronta_subido_a_minio=True)
        r = backoffice.post(ruta)
        assert r.status_code == 200 and r.json()["success"] is True, r.text
        f = fila(a.venta_id)
        assert f["confronta_subido_a_minio"] is False and f["confronta"] == a.guardado
        assert (entorno.media_root / a.guardado).exists()

        # An instance loaded now is stale once the sidecar has moved the file.
        obsoleta = VentaPortabilidad.objects.get(pk=b.venta_id)
    finally:
        entorno.sidecar.iniciar()

    comprobar_movida(entorno, a, primero)
    fb = comprobar_movida(entorno, b, segundo)

    # Saving the stale instance must not write back the old path or clear the object.
    obsoleta.estado_venta = "revisada"
    obsoleta.save()
    despues = fila(b.venta_id)
    assert despues["estado_venta"] == "revisada"
    assert {k: despues[k] for k in CAMPOS if k != "estado_venta"} == {
        k: fb[k] for k in CAMPOS if k != "estado_venta"}

    # Nothing local is left to mark for upload.
    r = backoffice.post(f"/telefonica/venta/{a.venta_id}/resubir-confronta-minio/")
    assert r.status_code == 400


def test_correction_replaces_the_object_and_retires_the_old_one(entorno, agente1):
    original = pdf("original")
    subida = agente1.crear_venta("Cliente Corrige", "original.pdf", original)
    antes = comprobar_movida(entorno, subida, original)
    objeto_viejo = antes["confronta_minio_object_name"]

    # The correction page shows the current file in MinIO.
    r = agente1.get(f"/telefonica/venta/{subida.venta_id}/corregir/")
    assert r.status_code == 200
    assert "Archivo almacenado en MinIO" in r.text and "Ver confronta actual" in r.text

    # Correcting only the client leaves the confronta alone.
    agente1.corregir(subida.venta_id, "Cliente Corregido")
    f = fila(subida.venta_id)
    assert f["cliente"] == "Cliente Corregido"
    assert {k: f[k] for k in CAMPOS if k.startswith("confronta")} == {
        k: antes[k] for k in CAMPOS if k.startswith("confronta")}

    nuevo = pdf("corregida")
    correccion = agente1.corregir(subida.venta_id, "Cliente Corregido", "corregida.pdf", nuevo)
    assert correccion.guardado.startswith("confrontas/corregida")
    f = fila(subida.venta_id)
    if f["confronta"]:  # the sidecar has not recorded the new file yet
        assert f["confronta"] == correccion.guardado
        assert f["confronta_subido_a_minio"] is False
        assert f["confronta_minio_object_name"] == objeto_viejo
    assert f["estado_venta"] == "pendiente_revision"

    despues = esperar_movida(entorno, subida.venta_id, objeto_anterior=objeto_viejo)
    comprobar_movida(entorno, correccion, nuevo)
    assert despues["confronta_minio_object_name"] != objeto_viejo
    _, r = descargar(agente1, subida.venta_id)
    assert r.status_code == 200 and r.content == nuevo
    esperar(lambda: not objeto_existe(entorno, objeto_viejo), 15,
            f"the old object {objeto_viejo} to be deleted", detalle=entorno.sidecar.cola)


def test_object_missing_from_the_bucket_gives_a_message(entorno, agente1):
    contenido = pdf("se pierde")
    subida = agente1.crear_venta("Cliente", "perdida.pdf", contenido)
    f = comprobar_movida(entorno, subida, contenido)
    entorno.minio().remove_object(entorno.bucket, f["confronta_minio_object_name"])
    r = agente1.get(f"/telefonica/venta/{subida.venta_id}/descargar-confronta/")
    assert r.status_code == 302 and r.headers["Location"] == f"/telefonica/venta/{subida.venta_id}/"
    avisos = mensajes(agente1.detalle(subida.venta_id))
    assert any("no se encuentra en MinIO" in m for m in avisos), avisos

    # The sidecar's verify command reports the same row.
    resultado = entorno.sidecar.comando("verify")
    salida = resultado.stdout + resultado.stderr
    assert resultado.returncode == 1, salida
    faltan = [linea for linea in salida.splitlines() if "MISMATCH" in linea]
    assert len(faltan) == 1 and f["confronta_minio_object_name"] in faltan[0], salida
