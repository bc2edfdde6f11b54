"""The test app's migrations are what `makemigrations` writes for the mixin, and making the
sidecar's fields non-editable costs no SQL: the one statement of that migration adds
`confronta_asignada_en`."""

import re
from io import StringIO

from django.core.management import call_command
from django.test import SimpleTestCase


def sentencias(sql: str):
    """The SQL statements of `sqlmigrate`'s output, without comments and transaction lines."""
    lineas = [linea for linea in sql.splitlines()
              if linea.strip() and not linea.startswith("--")
              and linea.strip() not in ("BEGIN;", "COMMIT;")]
    return [s.strip() for s in " ".join(lineas).split(";") if s.strip()]


class Migraciones(SimpleTestCase):
    # sqlmigrate opens SQLite's schema editor, which cannot run inside TestCase's transaction;
    # nothing here writes.
    databases = {"default"}

    def test_makemigrations_check_no_encuentra_cambios(self):
        salida = StringIO()
        call_command("makemigrations", check=True, dry_run=True, stdout=salida, stderr=salida)
        self.assertIn("No changes detected", salida.getvalue())

    def test_no_editable_sin_sql_mas_que_la_columna_nueva(self):
        salida = StringIO()
        call_command("sqlmigrate", "telefonica", "0003", stdout=salida)
        self.assertEqual(
            [re.sub(r"\s+", " ", s) for s in sentencias(salida.getvalue())],
            ['ALTER TABLE "telefonica_ventaportabilidad" ADD COLUMN "confronta_asignada_en" '
             'datetime NULL'])
