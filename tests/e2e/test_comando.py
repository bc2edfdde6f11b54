"""The seed plan's runbook (its section 10) in the demo project: `python manage.py
migrar_confrontas_minio --dry-run`, then a real batch with `--limit`, run by manage.py as an
operator would, against the sidecar binary under test and its config."""

import subprocess
import sys

from apoyo import Cliente, comprobar_movida, fila, pdf
from conftest import PROYECTO


def manage(entorno, *args):
    # The environment the sidecar runs with: its secret key comes from CONFRONTA_SYNC_SECRET_KEY,
    # as an operator's would come from /etc/confronta-sync/environment or the key file.
    return subprocess.run([sys.executable, "manage.py", *args], cwd=PROYECTO,
                          env=dict(entorno.sidecar.env), capture_output=True, text=True,
                          timeout=120)


def test_migrar_confrontas_minio_dry_run_then_a_batch(entorno):
    # Files already on disk before the sidecar runs: stop it, as before the first install.
    assert entorno.sidecar.parar() == 0, entorno.sidecar.cola()
    try:
        contenido = pdf("ya estaba en disco")
        subida = Cliente(entorno.base_url).entrar("agente1").crear_venta(
            "Cliente Antiguo", "antigua.pdf", contenido)
        antes = fila(subida.venta_id)
        local = entorno.media_root / subida.guardado
        assert local.exists() and antes["confronta"] == subida.guardado

        prueba = manage(entorno, "migrar_confrontas_minio", "--dry-run")
        salida = prueba.stdout
        # What an operator sees, kept with the run's logs (artifacts/logs/).
        (entorno.work / "logs" / "migrar_confrontas_minio.txt").write_text(
            "$ python manage.py migrar_confrontas_minio --dry-run\n" + salida)
        assert prueba.returncode == 0, salida + prueba.stderr
        lineas = salida.splitlines()
        assert lineas[0].startswith("Encontrada"), salida
        assert "MODO DRY-RUN: No se realizarán cambios reales" in lineas, salida
        mia = [linea for linea in lineas if subida.guardado in linea]
        assert len(mia) == 1, salida
        assert mia[0].startswith(f"  - Venta {antes['numero']}: {subida.guardado} (would upload to "), mia
        # Nothing changed anywhere.
        assert fila(subida.venta_id) == antes and local.exists()

        lote = manage(entorno, "migrar_confrontas_minio", "--limit", "50")
        salida = lote.stdout
        with open(entorno.work / "logs" / "migrar_confrontas_minio.txt", "a") as registro:
            registro.write("\n$ python manage.py migrar_confrontas_minio --limit 50\n" + salida)
        assert lote.returncode == 0, salida + lote.stderr
        lineas = salida.splitlines()
        assert lineas[0].startswith("Encontrada"), salida
        assert "Resumen de migración:" in lineas, salida
        exitosos = next(int(linea.rsplit(" ", 1)[1]) for linea in lineas if "Exitosos:" in linea)
        assert exitosos >= 1 and "  - Errores: 0" in lineas, salida
        comprobar_movida(entorno, subida, contenido)
    finally:
        entorno.sidecar.iniciar()
