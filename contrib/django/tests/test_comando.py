"""`manage.py migrar_confrontas_minio` against a fake `confronta-sync` on PATH: the flags it is
run with, the plan's Spanish summary from the sidecar's JSON (the formats of `--rescan --json`
and `--rescan --dry-run --json` in the sidecar's README), and the exit codes."""

import json
import os
import shutil
import stat
import sys
import tempfile
from io import StringIO
from pathlib import Path
from unittest import mock

from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import SimpleTestCase, override_settings

FALSO = """#!{python}
# A stand-in for the sidecar: records its arguments, answers what the test put in the files.
import os, sys
carpeta = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(carpeta, "argv.json"), "w") as f:
    import json; json.dump(sys.argv[1:], f)
sys.stderr.write("INFO rescan log line\\n")
with open(os.path.join(carpeta, "stdout")) as f:
    sys.stdout.write(f.read())
with open(os.path.join(carpeta, "rc")) as f:
    sys.exit(int(f.read()))
"""

PRUEBA = {
    "dry_run": True,
    "files": [
        {"path": "confrontas/nueva.pdf", "venta": 4, "numero": "PORTA-20261126093000",
         "object": "confrontas/venta_PORTA-20261126093000_confronta_4_6585ecd463c2.pdf",
         "size": 1500,
         "action": "would upload to confrontas/venta_PORTA-20261126093000_confronta_4_6585ecd463c2.pdf"},
        {"path": "confrontas/sin_venta.pdf", "venta": None, "numero": None, "object": None,
         "size": None, "action": "would skip: no row points at this file"},
    ],
    "would_move": 1, "would_skip": 1, "bytes": 1500,
    "rows_missing_their_file": [
        "confrontas/perdida.pdf: local_file_missing: venta 5 points at a local file that does "
        "not exist; row left untouched"],
}

REAL = {
    "moved": 1, "bytes": 1500, "failed": 1, "kept": 0, "orphans": 1, "busy": 0,
    "reasons": {"local_file_missing": 1, "no_row": 1},
    "problems": [
        "confrontas/perdida.pdf: local_file_missing: venta 5 points at a local file that does "
        "not exist; row left untouched",
        "confrontas/sin_venta.pdf: no_row: no row points at this file; it is kept"],
    "succeeded": 1, "failed_total": 1, "skipped": 1, "total": 3, "elapsed_s": 0.3,
}


class Comando(SimpleTestCase):
    def setUp(self):
        self.carpeta = Path(tempfile.mkdtemp(prefix="falso-confronta-sync-"))
        self.addCleanup(shutil.rmtree, self.carpeta, True)
        binario = self.carpeta / "confronta-sync"
        binario.write_text(FALSO.format(python=sys.executable))
        binario.chmod(binario.stat().st_mode | stat.S_IXUSR)
        self.responder({}, 0)
        ruta = f"{self.carpeta}{os.pathsep}{os.environ.get('PATH', '')}"
        parche = mock.patch.dict(os.environ, {"PATH": ruta})
        parche.start()
        self.addCleanup(parche.stop)

    def responder(self, respuesta, codigo):
        texto = respuesta if isinstance(respuesta, str) else json.dumps(respuesta)
        (self.carpeta / "stdout").write_text(texto)
        (self.carpeta / "rc").write_text(str(codigo))

    def argumentos(self):
        return json.loads((self.carpeta / "argv.json").read_text())

    def ejecutar(self, *args, **kwargs):
        salida, errores = StringIO(), StringIO()
        call_command("migrar_confrontas_minio", *args, stdout=salida, stderr=errores, **kwargs)
        return salida.getvalue()

    def test_dry_run_como_en_el_plan(self):
        self.responder(PRUEBA, 0)
        salida = self.ejecutar("--dry-run")
        self.assertEqual(self.argumentos(), [
            "--config", "/etc/confronta-sync/config.toml", "--rescan", "--json",
            "--limit", "100", "--dry-run"])
        lineas = salida.splitlines()
        self.assertEqual(lineas[0], "Encontrada 1 venta con confronta pendiente de migrar")
        self.assertIn("MODO DRY-RUN: No se realizarán cambios reales", salida)
        self.assertIn("  - Venta PORTA-20261126093000: confrontas/nueva.pdf (would upload to "
                      "confrontas/venta_PORTA-20261126093000_confronta_4_6585ecd463c2.pdf)", lineas)
        self.assertIn("  - Sin venta: confrontas/sin_venta.pdf (would skip: no row points at "
                      "this file)", lineas)
        self.assertTrue(any("perdida.pdf: local_file_missing" in linea for linea in lineas))
        self.assertIn("Se migrarían 1 (1500 bytes); se omitirían 1.", lineas)

    def test_lote_real_con_limite(self):
        self.responder(dict(REAL, failed=0, failed_total=0, problems=REAL["problems"][1:]), 0)
        salida = self.ejecutar("--limit", "50")
        self.assertEqual(self.argumentos()[-2:], ["--limit", "50"])
        self.assertNotIn("--dry-run", self.argumentos())
        lineas = salida.splitlines()
        self.assertEqual(lineas[0], "Encontrada 1 venta con confronta pendiente de migrar")
        for esperado in ("Resumen de migración:", "  - Exitosos: 1", "  - Errores: 0",
                         "  - Omitidos (sin venta o en curso): 1", "  - Total procesados: 1"):
            self.assertIn(esperado, lineas)

    def test_errores_salen_con_el_codigo_del_sidecar(self):
        self.responder(REAL, 1)
        salida, errores = StringIO(), StringIO()
        with self.assertRaises(CommandError) as e:
            call_command("migrar_confrontas_minio", stdout=salida, stderr=errores)
        self.assertEqual(e.exception.returncode, 1)
        self.assertEqual(salida.getvalue().splitlines()[0],
                         "Encontradas 2 ventas con confronta pendiente de migrar")
        self.assertIn("  - Errores: 1", salida.getvalue().splitlines())
        self.assertIn("  - Total procesados: 2", salida.getvalue().splitlines())
        self.assertIn("perdida.pdf: local_file_missing", salida.getvalue())

    def test_un_sidecar_que_no_arranca(self):
        self.responder("", 3)  # database unreachable: no JSON, the reason on stderr
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertEqual(e.exception.returncode, 3)
        self.assertIn("código 3", str(e.exception))

    def test_una_salida_que_no_es_json(self):
        self.responder("esto no es JSON", 0)
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertIn("no devolvió un resumen JSON", str(e.exception))

    @override_settings(CONFRONTA_SYNC_BINARIO="confronta-sync-que-no-existe")
    def test_sin_binario_en_el_path(self):
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertIn("No se encuentra el ejecutable confronta-sync-que-no-existe", str(e.exception))
        self.assertIn("CONFRONTA_SYNC_BINARIO", str(e.exception))

    def test_binario_y_config_de_los_ajustes_o_las_opciones(self):
        self.responder(PRUEBA, 0)
        binario = str(self.carpeta / "confronta-sync")
        with override_settings(CONFRONTA_SYNC_BINARIO=binario,
                               CONFRONTA_SYNC_CONFIG="/srv/crm/confronta-sync.toml"):
            self.ejecutar("--dry-run")
        self.assertEqual(self.argumentos()[:2], ["--config", "/srv/crm/confronta-sync.toml"])
        self.ejecutar("--dry-run", "--config", "/otra.toml", "--binario", binario)
        self.assertEqual(self.argumentos()[:2], ["--config", "/otra.toml"])
        with self.assertRaises(CommandError) as e:
            self.ejecutar("--binario", "/no/existe/confronta-sync")
        self.assertIn("/no/existe/confronta-sync", str(e.exception))

    def test_limite_positivo(self):
        with self.assertRaises(CommandError):
            self.ejecutar("--limit", "0")
