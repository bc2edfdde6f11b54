"""The Spanish catalogue shipped in locale/es (issue 26, item 4): its .mo is its .po compiled,
every entry is filled, and the messages for the refusal codes and the upload rules are in it.
(actualizar_catalogo.py regenerates both files.)"""

import gettext
import re
from pathlib import Path

from django.test import SimpleTestCase
from django.utils import translation

from confronta_sync_django import motivos

CARPETA = (Path(__file__).resolve().parents[1] / "confronta_sync_django" / "locale" / "es"
           / "LC_MESSAGES")


def entradas_del_po():
    """{msgid (or (msgid, msgid_plural)): msgstr (or [msgstr[0], ...])} of django.po."""
    texto = (CARPETA / "django.po").read_text()
    entradas = {}
    for bloque in texto.split("\n\n"):
        cadenas, clave = {}, None
        for linea in bloque.split("\n"):
            if linea.startswith("msg"):
                clave, valor = linea.split(" ", 1)
                cadenas[clave] = valor[1:-1]
            elif linea.startswith('"') and clave:
                cadenas[clave] += linea[1:-1]
        if cadenas.get("msgid"):
            sin_escapes = {k: v.encode().decode("unicode_escape").encode("latin-1").decode()
                           for k, v in cadenas.items()}
            if "msgid_plural" in sin_escapes:
                entradas[(sin_escapes["msgid"], sin_escapes["msgid_plural"])] = [
                    sin_escapes[f"msgstr[{i}]"] for i in range(3)]
            else:
                entradas[sin_escapes["msgid"]] = sin_escapes["msgstr"]
    return entradas


class Catalogo(SimpleTestCase):
    def test_el_mo_es_el_po_compilado(self):
        with open(CARPETA / "django.mo", "rb") as f:
            mo = gettext.GNUTranslations(f)
        entradas = entradas_del_po()
        self.assertGreater(len(entradas), 50)
        for msgid, msgstr in entradas.items():
            with self.subTest(msgid=msgid):
                if isinstance(msgid, tuple):
                    self.assertTrue(all(msgstr), msgstr)
                    self.assertEqual([mo.ngettext(*msgid, n) for n in (1, 2, 1000000)],
                                     [msgstr[0], msgstr[2], msgstr[1]])
                else:
                    self.assertTrue(msgstr)
                    self.assertEqual(mo.gettext(msgid), msgstr)
        self.assertEqual(mo.info()["language"], "es")
        self.assertNotIn("fuzzy", (CARPETA / "django.po").read_text())

    def test_los_motivos_y_las_reglas_estan(self):
        entradas = entradas_del_po()
        with translation.override("es"):
            mensajes = [str(m) for m in motivos.MENSAJES.values()]
            mensajes += [str(motivos.MENSAJE_GENERICO), str(motivos.TIPOS_ADMITIDOS)]
        for mensaje in mensajes:
            with self.subTest(mensaje=mensaje):
                self.assertIn(mensaje, entradas)
        # System checks are for developers, in English, and not in the catalogue.
        self.assertFalse([m for m in entradas if isinstance(m, str) and re.search(r"\bthe\b", m)])
