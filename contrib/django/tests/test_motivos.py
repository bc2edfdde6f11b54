"""The sidecar's refusal, in Spanish, from its code (contract B: `<code>: <english detail>` in
`confronta_sync_error`); the detail, which may name a limit or a virus, is never shown (issue
26, item 4: "Confronta rechazada: 2000 bytes is over max_bytes (1000)" reached the page)."""

import re

from django.template.loader import render_to_string
from django.test import TestCase
from django.utils import translation

from confronta_sync_django import motivos

from .apoyo import rechazar, usuario, venta_local

#: (what the sidecar writes, the Spanish reason, internals that must not show)
CASOS = [
    ("too_large: 62914560 bytes is over max_bytes (52428800)",
     "El archivo es demasiado grande.", ("62914560", "52428800", "max_bytes")),
    ("empty: empty file", "El archivo está vacío.", ("empty file",)),
    ("type_not_allowed: extension .exe is not in allowed_types",
     "Ese tipo de archivo no se admite.", ("allowed_types", ".exe")),
    ("content_not_allowed: content is application/vnd.microsoft.portable-executable (exe), "
     "which is not in allowed_types",
     "El contenido del archivo no es de un tipo admitido.", ("portable-executable", "exe")),
    ("content_unrecognised: content is not a recognised document or image (magic bytes)",
     "No se reconoce el contenido del archivo como un documento o una imagen admitidos.",
     ("magic bytes",)),
    ("infected: clamd found Win.Test.EICAR_HDB-1", "El archivo contiene un virus y se ha bloqueado.",
     ("EICAR", "clamd")),
    # An older sidecar, without codes: a generic message, not its English.
    ("clamd found Eicar-Signature", "El archivo no se ha aceptado.", ("Eicar", "clamd")),
    ("unknown_code: something new", "El archivo no se ha aceptado.", ("unknown_code", "something")),
]


class Motivos(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")

    def check(self, texto, esperado, internos):
        venta = rechazar(venta_local(self.agente), texto)
        self.assertEqual(venta.motivo_rechazo_confronta, esperado)
        html = re.sub(r"\s+", " ", render_to_string(
            "confronta_sync/confronta_detalle.html", {"venta": venta}))
        self.assertIn(f"Confronta rechazada: {esperado}", html)
        for interno in internos:
            self.assertNotIn(interno, html)

    def test_cada_codigo(self):
        for texto, esperado, internos in CASOS:
            with self.subTest(texto=texto), translation.override("es"):
                self.check(texto, esperado, internos)

    def test_los_codigos_del_contrato(self):
        self.assertEqual(set(motivos.CODIGOS), {
            "too_large", "empty", "type_not_allowed", "content_not_allowed",
            "content_unrecognised", "infected"})
        self.assertEqual(motivos.separar("too_large: a: b"), ("too_large", "a: b"))
        self.assertEqual(motivos.separar("Too_large: x"), (None, "Too_large: x"))
        self.assertEqual(motivos.separar(None), (None, ""))

    def test_sin_rechazo_no_hay_motivo(self):
        venta = venta_local(self.agente)
        self.assertEqual((venta.motivo_rechazo_confronta, venta.codigo_rechazo_confronta), ("", None))
        venta = rechazar(venta_local(self.agente), "infected: clamd found X")
        self.assertEqual(venta.codigo_rechazo_confronta, "infected")
