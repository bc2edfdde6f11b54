"""The three indexes the sidecar's queries need come with the migrations (issue 26, item 2): on
`confronta`, of the pending rows, and on `confronta_minio_object_name`; an index the packaged
SQL already made is taken as it is; a model whose own Meta drops them is reported. SQLite here;
tests/e2e/test_flujo.py builds them CONCURRENTLY on PostgreSQL."""

from pathlib import Path
from unittest import mock

from django.core import checks
from django.core.management import call_command
from django.db import connection, models
from django.test import SimpleTestCase, TransactionTestCase, override_settings
from django.test.utils import isolate_apps

from confronta_sync_django.checks import problemas_de_indices, revisar_modelo
from confronta_sync_django.models import ConfrontaMinioMixin
from tests.telefonica.models import VentaPortabilidad

TABLA = "telefonica_ventaportabilidad"
ESPERADOS = {
    "telefonica_ventaportabilidad_confronta_idx": ["confronta"],
    "telefonica_ventaportabilidad_confronta_pending_idx": ["id"],
    "telefonica_ventaportabilidad_confronta_object_idx": ["confronta_minio_object_name"],
}
SQL_DEL_PAQUETE = Path(__file__).resolve().parents[3] / "packaging" / "sql"


def indices():
    with connection.cursor() as cursor:
        restricciones = connection.introspection.get_constraints(cursor, TABLA)
        cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s",
                       [TABLA])
        sql = dict(cursor.fetchall())
    return {nombre: (datos["columns"], sql.get(nombre))
            for nombre, datos in restricciones.items() if datos["index"]}


class Indices(TransactionTestCase):
    # Migrating back and forth needs SQLite's schema editor, which cannot run inside
    # TestCase's transaction.

    def test_las_migraciones_crean_los_tres(self):
        encontrados = indices()
        for nombre, columnas in ESPERADOS.items():
            with self.subTest(indice=nombre):
                self.assertIn(nombre, encontrados)
                self.assertEqual(encontrados[nombre][0], columnas)
        # Django 4.2 writes the right-hand side as ('').
        self.assertRegex(encontrados["telefonica_ventaportabilidad_confronta_pending_idx"][1],
                         r'WHERE \("confronta" IS NOT NULL AND "confronta" <> \(?\'\'\)?\)$')

    def test_sqlite_los_usa_para_las_consultas_del_sidecar(self):
        # The sidecar's statements (src/db/mod.rs), with their parameters.
        consultas = {
            "telefonica_ventaportabilidad_confronta_idx": (
                f"SELECT id FROM {TABLA} WHERE confronta = %s ORDER BY id LIMIT 10",
                ["confrontas/x.pdf"]),
            "telefonica_ventaportabilidad_confronta_pending_idx": (
                f"SELECT id FROM {TABLA} WHERE confronta IS NOT NULL AND confronta <> '' "
                "AND substr(confronta, 1, length(CAST(%s AS text))) = CAST(%s AS text) "
                "AND id > CAST(%s AS bigint) ORDER BY id LIMIT %s",
                ["confrontas/", "confrontas/", 0, 100]),
            "telefonica_ventaportabilidad_confronta_object_idx": (
                f"SELECT COUNT(*) FROM (SELECT 1 FROM {TABLA} "
                "WHERE confronta_minio_object_name = %s LIMIT 1) AS found",
                ["confrontas/venta_1.pdf"]),
        }
        for indice, (sql, parametros) in consultas.items():
            with self.subTest(indice=indice), connection.cursor() as cursor:
                cursor.execute("EXPLAIN QUERY PLAN " + sql, parametros)
                plan = " ".join(str(fila[-1]) for fila in cursor.fetchall())
                self.assertRegex(plan, rf"USING (COVERING )?INDEX {indice}\b")

    def test_un_indice_hecho_con_el_sql_del_paquete_se_respeta(self):
        call_command("migrate", "telefonica", "0003", verbosity=0)
        try:
            self.assertFalse(set(ESPERADOS) & set(indices()))
            # packaging/sql/add_confronta_pending_index.sql, its SQLite form, run by hand.
            texto = (SQL_DEL_PAQUETE / "add_confronta_pending_index.sql").read_text()
            sqlite = "\n".join(linea[5:] for linea in texto.splitlines()
                               if linea.startswith("--   "))
            self.assertIn("CREATE INDEX IF NOT EXISTS", sqlite)
            with connection.cursor() as cursor:
                cursor.execute(sqlite)
        finally:
            call_command("migrate", "telefonica", verbosity=0)
        self.assertEqual(set(ESPERADOS) & set(indices()), set(ESPERADOS))


def revisar_modelo_de(model):
    with override_settings(CONFRONTA_SYNC_MODEL=model._meta.label):
        with mock.patch("confronta_sync_django.conf.apps.get_model", return_value=model):
            return revisar_modelo()


class ModeloSinLosIndices(SimpleTestCase):
    @isolate_apps("tests.telefonica")
    def test_un_meta_propio_que_no_hereda_los_pierde(self):
        class Propia(ConfrontaMinioMixin, models.Model):
            confronta = models.FileField(upload_to="confrontas/", null=True, blank=True)

            class Meta:
                app_label = "telefonica"
                ordering = ["-id"]

        class Heredada(ConfrontaMinioMixin, models.Model):
            confronta = models.FileField(upload_to="confrontas/", null=True, blank=True)

            class Meta(ConfrontaMinioMixin.Meta):
                app_label = "telefonica"
                ordering = ["-id"]

        self.assertEqual([p.id for p in problemas_de_indices(Propia)], ["confronta_sync.W008"])
        self.assertIn("class Meta(ConfrontaMinioMixin.Meta)", problemas_de_indices(Propia)[0].hint)
        self.assertEqual(problemas_de_indices(Heredada), [])
        self.assertEqual(problemas_de_indices(VentaPortabilidad), [])
        self.assertEqual([m.id for m in checks.run_checks()
                          if m.id and m.id.startswith("confronta_sync.")], [])

    @isolate_apps("tests.telefonica")
    def test_confronta_tiene_que_ser_un_filefield(self):
        class Texto(ConfrontaMinioMixin, models.Model):
            confronta = models.CharField(max_length=100, blank=True)
            agente = models.IntegerField()

            class Meta(ConfrontaMinioMixin.Meta):
                app_label = "telefonica"

        self.assertEqual([e.id for e in revisar_modelo_de(Texto)], ["confronta_sync.E003"])
