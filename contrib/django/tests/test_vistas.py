"""The download view's answers in each state the sidecar leaves a venta in, the detail fragment
that goes with them, and the "mark for re-upload" view. No MinIO server: presigning is computed
locally, and the existence check (a HEAD) is replaced where a test needs its answer."""

import pickle
import re
from datetime import timedelta
from unittest import mock
from urllib.parse import parse_qs, urlsplit

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.test import TestCase, override_settings

from django.template.loader import render_to_string

from confronta_sync_django import minio_utils
from tests.telefonica.forms import VentaTodoForm
from tests.telefonica.models import VentaPortabilidad

from .apoyo import OBJETO, mover_a_minio, rechazar, usuario, venta_local


def mensajes(html: str):
    return [re.sub(r"\s+", " ", m).strip()
            for m in re.findall(r'<div class="mensaje[^"]*">(.*?)</div>', html, re.S)]


class Descarga(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")
        cls.otro = usuario("agente2")
        cls.backoffice = usuario("bo", grupos=["backoffice"])
        cls.inactivo = usuario("viejo", grupos=["backoffice"], activo=False)

    def setUp(self):
        self.client.force_login(self.agente)

    def url(self, venta):
        return f"/telefonica/venta/{venta.pk}/descargar-confronta/"

    def seguir(self, r):
        """The detail page the view sent us back to, and its messages."""
        self.assertEqual(r.status_code, 302)
        html = self.client.get(r["Location"]).content.decode()
        return html, mensajes(html)

    def test_en_minio_redirige_a_una_url_firmada_de_diez_minutos(self):
        venta = mover_a_minio(venta_local(self.agente))
        with mock.patch.object(minio_utils, "objeto_existe", return_value=True) as existe:
            with self.assertLogs("confronta_sync_django", "INFO") as registro:
                r = self.client.get(self.url(venta))
        existe.assert_called_once_with(OBJETO)
        self.assertEqual(r.status_code, 302)
        partes = urlsplit(r["Location"])
        self.assertEqual(partes.netloc, "127.0.0.1:9")
        self.assertEqual(partes.path, f"/telefonica-crea-online/{OBJETO}")
        query = parse_qs(partes.query)
        # Issue 26, item 6: the link was valid a day, though the view makes one per click.
        self.assertEqual(query["X-Amz-Expires"], ["600"])
        self.assertIn("no-store", r["Cache-Control"])
        # One INFO line per download: who, which venta, which object; never the signed URL.
        self.assertEqual(len(registro.records), 1)
        linea = registro.records[0]
        self.assertEqual(linea.levelname, "INFO")
        self.assertIn(f"user={self.agente.pk} ({self.agente.username})", linea.getMessage())
        self.assertIn(f"venta={venta.pk}", linea.getMessage())
        self.assertIn(f"object={OBJETO}", linea.getMessage())
        self.assertNotIn("X-Amz", linea.getMessage())
        self.assertNotIn(query["X-Amz-Signature"][0], linea.getMessage())
        html = self.client.get(f"/telefonica/venta/{venta.pk}/").content.decode()
        self.assertIn("Archivo almacenado en MinIO", html)
        self.assertIn(f'href="{self.url(venta)}"', html)

    def test_la_validez_se_configura(self):
        venta = mover_a_minio(venta_local(self.agente))
        for valor, segundos in ((timedelta(minutes=2), "120"), (45, "45")):
            with self.subTest(valor=valor), override_settings(CONFRONTA_SYNC_URL_EXPIRA=valor), \
                    mock.patch.object(minio_utils, "objeto_existe", return_value=True):
                r = self.client.get(self.url(venta))
                self.assertEqual(parse_qs(urlsplit(r["Location"]).query)["X-Amz-Expires"],
                                 [segundos])

    def test_todavia_local_se_sirve_por_la_vista(self):
        # Issue 26, item 3: while the file is local, the fragments linked the public /media/
        # URL, with no permission check at all.
        venta = venta_local(self.agente, "escaneo.pdf", b"%PDF-1.4 local")
        html = self.client.get(f"/telefonica/venta/{venta.pk}/").content.decode()
        self.assertIn("Archivo local", html)
        self.assertIn(f'href="{self.url(venta)}"', html)
        self.assertNotIn("/media/", html)
        with self.assertLogs("confronta_sync_django", "INFO") as registro:
            r = self.client.get(self.url(venta))
        self.assertEqual(r.status_code, 200)
        self.assertEqual(b"".join(r.streaming_content), b"%PDF-1.4 local")
        self.assertEqual([linea.getMessage() for linea in registro.records], [
            f"confronta download: user={self.agente.pk} ({self.agente.username}) "
            f"venta={venta.pk} local={venta.confronta.name}"])
        self.assertEqual(r["Content-Type"], "application/pdf")
        nombre = venta.confronta.name.rsplit("/", 1)[1]  # escaneo.pdf, or Django's escaneo_<x>.pdf
        self.assertEqual(r["Content-Disposition"], f'attachment; filename="{nombre}"')
        self.assertEqual(r["X-Content-Type-Options"], "nosniff")
        self.assertIn("no-store", r["Cache-Control"])
        # The same rule as in MinIO: another agent gets 403.
        self.client.force_login(self.otro)
        self.assertEqual(self.client.get(self.url(venta)).status_code, 403)

    def test_la_url_del_archivo_es_la_vista(self):
        # Django's file widget (every form, the admin) and the seed plan's old templates use
        # `venta.confronta.url`: it leads through the permission rule too.
        venta = venta_local(self.agente)
        self.assertEqual(venta.confronta.url, self.url(venta))
        self.assertEqual(VentaPortabilidad.objects.get(pk=venta.pk).confronta.url, self.url(venta))
        copia = pickle.loads(pickle.dumps(venta))  # the cache framework pickles instances
        self.assertEqual(copia.confronta.url, self.url(venta))
        for admin in ("admin", "admin-simple"):
            with self.subTest(admin=admin):
                self.client.force_login(usuario(f"jefe-{admin}", superuser=True))
                html = self.client.get(
                    f"/{admin}/telefonica/ventaportabilidad/{venta.pk}/change/").content.decode()
                self.assertIn(f'href="{self.url(venta)}"', html)
                self.assertNotIn("/media/", html)

    def test_movida_entre_la_lectura_y_la_apertura(self):
        # The sidecar records the venta and deletes the file between the view's read of the
        # row and its open of the file: the view answers for the row as it is now.
        venta = venta_local(self.agente)
        abrir = FileSystemStorage.open

        def el_sidecar_la_mueve_antes(storage, nombre, modo="rb"):
            mover_a_minio(venta)
            storage.delete(nombre)
            return abrir(storage, nombre, modo)

        with mock.patch.object(FileSystemStorage, "open", el_sidecar_la_mueve_antes), \
                mock.patch.object(minio_utils, "objeto_existe", return_value=True):
            r = self.client.get(self.url(venta))
        self.assertEqual(r.status_code, 302)
        self.assertTrue(r["Location"].startswith(f"http://127.0.0.1:9/telefonica-crea-online/{OBJETO}?"),
                        r["Location"])

    def test_el_fragmento_de_correccion_tampoco_enlaza_media(self):
        venta = venta_local(self.agente)
        html = render_to_string("confronta_sync/confronta_corregir.html",
                                {"venta": venta, "form": VentaTodoForm(instance=venta)})
        self.assertIn(f'href="{self.url(venta)}"', html)
        self.assertNotIn("/media/", html)

    def test_rechazada_dice_el_motivo_y_pide_una_nueva(self):
        # Issue 26, item 4: the sidecar's English text, with its limit, was shown verbatim.
        venta = rechazar(venta_local(self.agente), "too_large: 2000 bytes is over max_bytes (1000)")
        r = self.client.get(self.url(venta))
        html, avisos = self.seguir(r)
        self.assertIn(
            "Confronta rechazada: El archivo es demasiado grande. Suba una confronta nueva "
            "corrigiendo la venta.", avisos)
        self.assertFalse(any("se está subiendo" in m for m in avisos), avisos)
        bloque = re.sub(r"\s+", " ", html)
        self.assertIn("Confronta rechazada: El archivo es demasiado grande.", bloque)
        for interno in ("2000", "1000", "max_bytes", "too_large"):
            self.assertNotIn(interno, bloque + " ".join(avisos))
        self.assertIn("Suba una confronta nueva", bloque)
        self.assertIn('href="/corregir/"', bloque)
        self.assertNotIn("Archivo local", bloque)

    def test_una_confronta_nueva_tras_el_rechazo_vuelve_a_local(self):
        venta = rechazar(venta_local(self.agente))
        venta.confronta.save("nueva.pdf", ContentFile(b"%PDF nueva"))
        venta.refresh_from_db()
        self.assertFalse(venta.confronta_rechazada)
        self.assertEqual(venta.estado_confronta, "local")
        r = self.client.get(self.url(venta))
        self.assertEqual(b"".join(r.streaming_content), b"%PDF nueva")

    def test_objeto_que_falta_en_el_bucket(self):
        venta = mover_a_minio(venta_local(self.agente))
        with mock.patch.object(minio_utils, "objeto_existe", return_value=False):
            with self.assertLogs("confronta_sync_django", "ERROR"):
                r = self.client.get(self.url(venta))
        _, avisos = self.seguir(r)
        self.assertTrue(any(f"no se encuentra en MinIO ({OBJETO})" in m for m in avisos), avisos)

    def test_minio_inalcanzable(self):
        venta = mover_a_minio(venta_local(self.agente))
        with override_settings(CONFRONTA_SYNC_MINIO={
            "ENDPOINT": "http://127.0.0.1:9", "ACCESS_KEY": "k", "SECRET_KEY": "s",
            "BUCKET": "b", "TIMEOUT_S": 0.5,
        }):
            with self.assertLogs("confronta_sync_django", "ERROR"):
                r = self.client.get(self.url(venta))
        _, avisos = self.seguir(r)
        self.assertTrue(any("No se pudo contactar con MinIO" in m for m in avisos), avisos)

    def test_sin_confronta(self):
        venta = venta_local(self.agente)
        type(venta).objects.filter(pk=venta.pk).update(confronta="")
        _, avisos = self.seguir(self.client.get(self.url(venta)))
        self.assertIn("Esta venta no tiene confronta.", avisos)

    def test_otro_agente_403_inactivo_y_anonimo_al_login(self):
        venta = mover_a_minio(venta_local(self.agente))
        self.client.force_login(self.otro)
        self.assertEqual(self.client.get(self.url(venta)).status_code, 403)
        self.client.logout()
        r = self.client.get(self.url(venta))
        self.assertEqual(r.status_code, 302)
        self.assertTrue(r["Location"].startswith("/accounts/login/"), r["Location"])
        # An inactive user's session no longer authenticates (ModelBackend).
        self.client.force_login(self.inactivo)
        r = self.client.get(self.url(venta))
        self.assertEqual(r.status_code, 302)
        self.assertTrue(r["Location"].startswith("/accounts/login/"), r["Location"])

    def test_backoffice_descarga(self):
        venta = mover_a_minio(venta_local(self.agente))
        self.client.force_login(self.backoffice)
        with mock.patch.object(minio_utils, "objeto_existe", return_value=True):
            r = self.client.get(self.url(venta))
        self.assertEqual(r.status_code, 302)
        self.assertTrue(r["Location"].startswith("http://127.0.0.1:9/"), r["Location"])


class Resubir(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")
        cls.backoffice = usuario("bo", grupos=["backoffice"])

    def url(self, venta):
        return f"/telefonica/venta/{venta.pk}/resubir-confronta-minio/"

    def test_reglas(self):
        venta = venta_local(self.agente)
        type(venta).objects.filter(pk=venta.pk).update(confronta_subido_a_minio=True)
        self.client.force_login(self.agente)
        self.assertEqual(self.client.post(self.url(venta)).status_code, 403)
        self.client.force_login(self.backoffice)
        self.assertEqual(self.client.get(self.url(venta)).status_code, 405)
        r = self.client.post(self.url(venta))
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(r.json()["pendiente"], True)
        venta.refresh_from_db()
        self.assertFalse(venta.confronta_subido_a_minio)

    def test_un_registro_entre_la_lectura_y_la_marca_gana(self):
        # Regression (issue 26): the view read the venta, the sidecar recorded it, and the
        # view's unconditional reset left a valid object flagged "not in MinIO" for good.
        venta = venta_local(self.agente)
        self.client.force_login(self.backoffice)
        existe = FileSystemStorage.exists

        def el_sidecar_registra_ahora(storage, nombre):
            # The view's last look at the file before it marks the venta: the sidecar records
            # the venta (and deletes the file) right after that look.
            presente = existe(storage, nombre)
            mover_a_minio(venta)
            return presente

        with mock.patch.object(FileSystemStorage, "exists", el_sidecar_registra_ahora):
            r = self.client.post(self.url(venta))
        self.assertEqual(r.status_code, 400, r.content)
        self.assertIn("ya está en MinIO", r.json()["error"])
        venta.refresh_from_db()
        self.assertTrue(venta.confronta_subido_a_minio)
        self.assertEqual(venta.confronta_minio_object_name, OBJETO)

    def test_rechazada_no_tiene_archivo_que_subir(self):
        venta = rechazar(venta_local(self.agente), "infected: clamd found Eicar-Signature")
        self.client.force_login(self.backoffice)
        r = self.client.post(self.url(venta))
        self.assertEqual(r.status_code, 400)
        self.assertIn("Confronta rechazada: El archivo contiene un virus y se ha bloqueado.",
                      r.json()["error"])
        self.assertNotIn("Eicar", r.json()["error"])
