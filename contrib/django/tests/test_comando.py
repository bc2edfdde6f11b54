"""`manage.py migrar_confrontas_minio` with the seed plan's semantics (issue 26, item 5), against
a fake `confronta-sync` on PATH that answers as contract C says (`--rescan --json --venta ID
...`: a `results` entry per venta, in the order given; the dry run's `files`): the command picks
the ventas, `--limit` counts ventas, the dry run lists exactly what the real run takes, one
line per venta, the plan's summary, and an exit code for this run's failures only."""

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
from django.test import TestCase, override_settings

from confronta_sync_django.management.commands import migrar_confrontas_minio as comando
from tests.telefonica.models import VentaPortabilidad

from .apoyo import mover_a_minio, rechazar, usuario, venta_local

FALSO = """#!{python}
# A stand-in for the sidecar: records each run's arguments, and answers for the ventas it is
# given as the test said (respuestas.json: venta id -> result; "rc", "stdout" override all).
import json, os, sys
carpeta = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(carpeta, "llamadas.json"), "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
sys.stderr.write("INFO rescan log line\\n")
with open(os.path.join(carpeta, "respuestas.json")) as f:
    guion = json.load(f)
if "stdout" in guion:
    sys.stdout.write(guion["stdout"])
    sys.exit(guion.get("rc", 0))
ventas = [int(sys.argv[i + 1]) for i, a in enumerate(sys.argv) if a == "--venta"]
por_venta = guion.get("ventas", {{}})
if "--dry-run" in sys.argv:
    archivos = []
    for v in ventas:
        r = por_venta.get(str(v), {{}})
        objeto = r.get("object", f"confrontas/venta_{{v}}.pdf")
        accion = r.get("action", f"would upload to {{objeto}}")
        archivos.append({{"path": r.get("path"), "venta": v, "numero": "PORTA-1",
                         "object": objeto, "size": 15, "action": accion}})
    print(json.dumps({{"dry_run": True, "files": archivos, "would_move": len(archivos),
                      "would_skip": 0, "bytes": 0, "rows_missing_their_file": []}}))
else:
    resultados = []
    for v in ventas:
        r = dict({{"venta_id": v, "path": None, "outcome": "moved",
                   "object": f"confrontas/venta_{{v}}.pdf", "reason": None, "message": None}},
                 **por_venta.get(str(v), {{}}))
        resultados.append(r)
    print(json.dumps({{"moved": len(ventas), "results": resultados}}))
sys.exit(guion.get("rc", 0))
"""


class Comando(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")

    def setUp(self):
        self.carpeta = Path(tempfile.mkdtemp(prefix="falso-confronta-sync-"))
        self.addCleanup(shutil.rmtree, self.carpeta, True)
        binario = self.carpeta / "confronta-sync"
        binario.write_text(FALSO.format(python=sys.executable))
        binario.chmod(binario.stat().st_mode | stat.S_IXUSR)
        self.responder()
        ruta = f"{self.carpeta}{os.pathsep}{os.environ.get('PATH', '')}"
        parche = mock.patch.dict(os.environ, {"PATH": ruta})
        parche.start()
        self.addCleanup(parche.stop)

    def responder(self, **guion):
        (self.carpeta / "respuestas.json").write_text(json.dumps(guion))

    def llamadas(self):
        archivo = self.carpeta / "llamadas.json"
        if not archivo.exists():
            return []
        return [json.loads(linea) for linea in archivo.read_text().splitlines()]

    def ventas_de(self, argumentos):
        return [int(argumentos[i + 1]) for i, a in enumerate(argumentos) if a == "--venta"]

    def ejecutar(self, *args, **kwargs):
        salida, errores = StringIO(), StringIO()
        call_command("migrar_confrontas_minio", *args, stdout=salida, stderr=errores, **kwargs)
        return salida.getvalue().splitlines()

    def pendientes(self, n, perdidas=()):
        """n ventas with their file on disk, in id order; the positions in `perdidas` get a
        row whose file is missing instead."""
        ventas = []
        for i in range(n):
            venta = venta_local(self.agente, f"c{i}.pdf")
            if i in perdidas:
                venta.confronta.storage.delete(venta.confronta.name)
            ventas.append(venta)
        return ventas

    # --- the ventas it takes -------------------------------------------------------------

    def test_limit_cuenta_ventas_con_archivo_por_id(self):
        # Issue 26, item 5: --limit counted the sidecar's files (orphans included) in path
        # order; the command now picks ventas, by id, whose file exists.
        ventas = self.pendientes(6, perdidas={1})
        mover_a_minio(ventas[3])  # already in MinIO: not pending
        otra = venta_local(self.agente, "ya.pdf")
        VentaPortabilidad.objects.filter(pk=otra.pk).update(confronta="")  # no confronta
        lineas = self.ejecutar("--limit", "3")
        [argumentos] = self.llamadas()
        esperadas = [ventas[0].pk, ventas[2].pk, ventas[4].pk]
        self.assertEqual(self.ventas_de(argumentos), esperadas)
        self.assertEqual(argumentos[:5], ["--config", "/etc/confronta-sync/config.toml",
                                          "--rescan", "--json", "--venta"])
        self.assertNotIn("--limit", argumentos)
        self.assertEqual(lineas[0], "Encontradas 3 ventas con confronta pendiente de migrar")
        for venta in (ventas[0], ventas[2], ventas[4]):
            self.assertIn(f"  ✓ venta {venta.pk} (PORTA-1): {venta.confronta.name} → objeto "
                          f"confrontas/venta_{venta.pk}.pdf", lineas)
        self.assertIn(f"  - venta {ventas[1].pk} (PORTA-1): {ventas[1].confronta.name} no existe",
                      lineas)

    def test_el_dry_run_lista_lo_que_tomaria_el_real(self):
        ventas = self.pendientes(5, perdidas={0, 3})
        prueba = self.ejecutar("--dry-run", "--limit", "2")
        real = self.ejecutar("--limit", "2")
        primera, segunda = self.llamadas()
        self.assertIn("--dry-run", primera)
        self.assertNotIn("--dry-run", segunda)
        self.assertEqual(self.ventas_de(primera), self.ventas_de(segunda))
        self.assertEqual(self.ventas_de(primera), [ventas[1].pk, ventas[2].pk])
        self.assertIn("MODO DRY-RUN: No se realizarán cambios reales", prueba)
        marcadas = lambda lineas: [l for l in lineas if l.startswith(("  ✓", "  ✗"))]  # noqa: E731
        self.assertEqual(marcadas(prueba), marcadas(real))
        self.assertIn("Se migrarían 2; no se migrarían 0.", prueba)
        self.assertEqual(prueba[0], real[0])

    def test_limit_0_como_en_el_plan(self):
        # The plan's queryset[:0]: nothing, and the sidecar is not even run.
        self.pendientes(2)
        lineas = self.ejecutar("--limit", "0")
        self.assertEqual(self.llamadas(), [])
        self.assertEqual(lineas[0], "Encontradas 0 ventas con confronta pendiente de migrar")
        for esperado in ("  - Exitosos: 0", "  - Errores: 0", "  - Total procesados: 0"):
            self.assertIn(esperado, lineas)
        with self.assertRaises(CommandError):
            self.ejecutar("--limit", "-1")

    def test_por_tandas(self):
        ventas = self.pendientes(5)
        with mock.patch.object(comando, "VENTAS_POR_EJECUCION", 2):
            lineas = self.ejecutar()
        self.assertEqual([self.ventas_de(a) for a in self.llamadas()],
                         [[v.pk for v in ventas[:2]], [v.pk for v in ventas[2:4]], [ventas[4].pk]])
        self.assertIn("  - Exitosos: 5", lineas)

    # --- one line per venta, the summary, the exit code -----------------------------------

    def test_cada_resultado_y_el_resumen(self):
        ventas = self.pendientes(6, perdidas={5})
        self.responder(ventas={
            str(ventas[1].pk): {"outcome": "kept", "object": None, "reason": "quarantined",
                                "message": "content is application/x-msdownload (exe)"},
            str(ventas[2].pk): {"outcome": "failed", "object": None, "reason": "s3_unavailable",
                                "message": "connection refused"},
            str(ventas[3].pk): {"outcome": "busy", "object": None},
            str(ventas[4].pk): {"outcome": "nothing", "object": "confrontas/ya.pdf"},
        })
        original = comando.Command._mostrar_resultados

        def el_sidecar_rechaza_antes_de_que_se_lea(self_, lote, respuesta, cuenta):
            # What the fake's "kept/quarantined" stands for: the sidecar's refusal, in the row.
            rechazar(ventas[1], "content_not_allowed: content is application/x-msdownload "
                                "(exe), which is not in allowed_types")
            return original(self_, lote, respuesta, cuenta)

        salida = StringIO()
        with mock.patch.object(comando.Command, "_mostrar_resultados",
                               el_sidecar_rechaza_antes_de_que_se_lea), \
                self.assertRaises(CommandError) as fallo:
            call_command("migrar_confrontas_minio", stdout=salida, stderr=StringIO())
        lineas = salida.getvalue().splitlines()
        # This run's failures: the refused venta and the failed one. Exit 1.
        self.assertEqual(fallo.exception.returncode, 1)
        self.assertIn(f"  ✓ venta {ventas[0].pk} (PORTA-1): {ventas[0].confronta.name} → objeto "
                      f"confrontas/venta_{ventas[0].pk}.pdf", lineas)
        self.assertIn(f"  ✗ venta {ventas[1].pk} (PORTA-1): {ventas[1].confronta.name}: "
                      f"rechazada: El contenido del archivo no es de un tipo admitido. "
                      f"[content_not_allowed: content is application/x-msdownload (exe), "
                      f"which is not in allowed_types]", lineas)
        self.assertIn(f"  ✗ venta {ventas[2].pk} (PORTA-1): {ventas[2].confronta.name}: falló "
                      f"(MinIO no responde); la próxima ejecución lo vuelve a intentar "
                      f"[s3_unavailable: connection refused]", lineas)
        self.assertIn(f"  · venta {ventas[3].pk} (PORTA-1): {ventas[3].confronta.name}: la está "
                      f"subiendo el servicio confronta-sync", lineas)
        self.assertIn(f"  ✓ venta {ventas[4].pk} (PORTA-1): {ventas[4].confronta.name} → objeto "
                      f"confrontas/ya.pdf (ya estaba en MinIO)", lineas)
        resumen = lineas[lineas.index("Resumen de migración:"):]
        self.assertEqual(resumen, [
            "Resumen de migración:", "  - Exitosos: 2", "  - Errores: 2",
            "  - En curso (los sube el servicio): 1", "  - Sin archivo local (no se migran): 1",
            "  - Total procesados: 4"])

    def test_un_archivo_que_falta_no_es_un_fallo_de_esta_ejecucion(self):
        # Issue 26, item 5: a row naming a missing file made every run exit 1.
        ventas = self.pendientes(2, perdidas={0})
        lineas = self.ejecutar()  # no CommandError: exit 0
        self.assertIn("  - Errores: 0", lineas)
        self.assertIn("  - Sin archivo local (no se migran): 1", lineas)
        self.assertEqual(self.ventas_de(self.llamadas()[0]), [ventas[1].pk])

    def test_un_archivo_que_desaparece_durante_la_ejecucion(self):
        # Between the command's look and the sidecar's run, the daemon moved the first file,
        # and the second was deleted by hand: neither is a failure of this run.
        ventas = self.pendientes(2)
        self.responder(ventas={str(ventas[0].pk): {"outcome": "missing", "object": None},
                               str(ventas[1].pk): {"outcome": "missing", "object": None}})
        original = comando.Command._mostrar_resultados

        def el_demonio_la_movio(self_, lote, respuesta, cuenta):
            mover_a_minio(ventas[0])
            ventas[1].confronta.storage.delete(ventas[1].confronta.name)
            return original(self_, lote, respuesta, cuenta)

        with mock.patch.object(comando.Command, "_mostrar_resultados", el_demonio_la_movio):
            lineas = self.ejecutar()
        self.assertTrue(any(l.startswith(f"  ✓ venta {ventas[0].pk} ") for l in lineas), lineas)
        self.assertIn(f"  - venta {ventas[1].pk} (PORTA-1): {ventas[1].confronta.name} ya no "
                      f"existe (no cuenta como error)", lineas)
        self.assertIn("  - Errores: 0", lineas)

    # --- the sidecar ---------------------------------------------------------------------

    def test_un_sidecar_que_no_arranca(self):
        self.pendientes(1)
        self.responder(stdout="", rc=3)  # database unreachable: no JSON, the reason on stderr
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertEqual(e.exception.returncode, 3)
        self.assertIn("código 3", str(e.exception))

    def test_un_sidecar_anterior_al_contrato_c(self):
        # clap refuses the unknown --venta: exit 2, usage on stderr, nothing on stdout.
        self.pendientes(1)
        self.responder(stdout="", rc=2)
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertEqual(e.exception.returncode, 2)
        self.assertIn("--venta", str(e.exception))
        # One that ran but answers without per-venta results.
        self.responder(stdout=json.dumps({"moved": 1, "succeeded": 1}), rc=0)
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertIn("results", str(e.exception))

    def test_una_salida_que_no_es_json(self):
        self.pendientes(1)
        self.responder(stdout="esto no es JSON", rc=0)
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertIn("no devolvió un resumen JSON", str(e.exception))

    @override_settings(CONFRONTA_SYNC_BINARIO="confronta-sync-que-no-existe")
    def test_sin_binario_en_el_path(self):
        self.pendientes(1)
        with self.assertRaises(CommandError) as e:
            self.ejecutar()
        self.assertIn("No se encuentra el ejecutable confronta-sync-que-no-existe", str(e.exception))
        self.assertIn("CONFRONTA_SYNC_BINARIO", str(e.exception))

    def test_binario_y_config_de_los_ajustes_o_las_opciones(self):
        self.pendientes(1)
        binario = str(self.carpeta / "confronta-sync")
        with override_settings(CONFRONTA_SYNC_BINARIO=binario,
                               CONFRONTA_SYNC_CONFIG="/srv/crm/confronta-sync.toml"):
            self.ejecutar("--dry-run")
        self.assertEqual(self.llamadas()[-1][:2], ["--config", "/srv/crm/confronta-sync.toml"])
        self.ejecutar("--dry-run", "--config", "/otra.toml", "--binario", binario)
        self.assertEqual(self.llamadas()[-1][:2], ["--config", "/otra.toml"])
        with self.assertRaises(CommandError) as e:
            self.ejecutar("--binario", "/no/existe/confronta-sync")
        self.assertIn("/no/existe/confronta-sync", str(e.exception))
