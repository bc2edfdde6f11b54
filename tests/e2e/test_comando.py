"""The seed plan's runbook (its section 10) in the demo project: `python manage.py
migrar_confrontas_minio --dry-run`, then a real batch with `--limit`, run by manage.py as an
operator would, against the sidecar binary under test and its config. Needs the sidecar's
`--rescan --venta` (contract C of issue 26)."""

import hashlib
import subprocess
import sys

from apoyo import Cliente, comprobar_movida, fila, pdf, venta_sin_formulario
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
    registro = entorno.work / "logs" / "migrar_confrontas_minio.txt"
    try:
        contenido = pdf("ya estaba en disco")
        subida = Cliente(entorno.base_url).entrar("agente1").crear_venta(
            "Cliente Antiguo", "antigua.pdf", contenido)
        antes = fila(subida.venta_id)
        local = entorno.media_root / subida.guardado
        assert local.exists() and antes["confronta"] == subida.guardado
        # A venta whose file is gone: listed apart, not a failure of the run.
        # (A name no other test uses: a later upload under it would meet this row.)
        perdida = venta_sin_formulario("agente2", "Cliente Sin Archivo",
                                       "sin-archivo-del-comando.pdf", pdf("x"))
        (entorno.media_root / perdida.guardado).unlink()
        sin_archivo = fila(perdida.venta_id)
        objeto = (f"{entorno.prefijo}confrontas/venta_{antes['numero']}_confronta_"
                  f"{subida.venta_id}_{hashlib.sha256(contenido).hexdigest()[:12]}.pdf")
        mia = f"  ✓ venta {subida.venta_id} ({antes['numero']}): {subida.guardado} → objeto {objeto}"
        apartada = (f"  - venta {perdida.venta_id} ({sin_archivo['numero']}): "
                    f"{perdida.guardado} no existe")

        def ejecutar(*args):
            r = manage(entorno, "migrar_confrontas_minio", *args)
            with open(registro, "a") as f:  # what an operator sees, kept with the run's logs
                f.write(f"$ python manage.py migrar_confrontas_minio {' '.join(args)}\n{r.stdout}\n")
            return r, r.stdout.splitlines()

        # --limit 0, as the plan's [:0]: nothing, and nothing changes.
        r, lineas = ejecutar("--limit", "0")
        assert r.returncode == 0, r.stdout + r.stderr
        assert lineas[0] == "Encontradas 0 ventas con confronta pendiente de migrar", lineas

        r, lineas = ejecutar("--dry-run")
        assert r.returncode == 0, r.stdout + r.stderr
        assert lineas[0].startswith("Encontrada"), lineas
        assert "MODO DRY-RUN: No se realizarán cambios reales" in lineas, lineas
        assert mia in lineas and apartada in lineas, r.stdout
        # Nothing changed anywhere.
        assert fila(subida.venta_id) == antes and local.exists()
        assert fila(perdida.venta_id) == sin_archivo

        r, lineas = ejecutar("--limit", "50")
        # The missing file is not this run's failure: exit 0.
        assert r.returncode == 0, r.stdout + r.stderr
        assert mia in lineas and apartada in lineas, r.stdout
        resumen = lineas[lineas.index("Resumen de migración:"):]
        assert "  - Errores: 0" in resumen and "  - Sin archivo local (no se migran): 1" in resumen
        exitosos = next(int(l.rsplit(" ", 1)[1]) for l in resumen if "Exitosos:" in l)
        assert exitosos >= 1, resumen
        comprobar_movida(entorno, subida, contenido)
        assert fila(perdida.venta_id) == sin_archivo  # left alone
    finally:
        entorno.sidecar.iniciar()
        from telefonica.models import VentaPortabilidad

        # The row that names a missing file would stay pending for the other tests.
        VentaPortabilidad.objects.filter(cliente="Cliente Sin Archivo").update(confronta="")
