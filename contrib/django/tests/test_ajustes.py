"""CONFRONTA_SYNC_MINIO's parsing, and presigned URLs computed locally: signed for
PUBLIC_ENDPOINT, with no request to MinIO (nothing listens where the settings point)."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, TestCase, override_settings

from confronta_sync_django import minio_utils
from confronta_sync_django.conf import minio_settings, parse_endpoint

from .apoyo import OBJETO, mover_a_minio, usuario, venta_local

BASE = {"ACCESS_KEY": "k", "SECRET_KEY": "s", "BUCKET": "bucket-e2e", "REGION": "us-east-1"}


class Ajustes(SimpleTestCase):
    def test_endpoints(self):
        self.assertEqual(parse_endpoint("http://127.0.0.1:9000", "ENDPOINT").host, "127.0.0.1:9000")
        self.assertIs(parse_endpoint("https://minio.example.test", "ENDPOINT").secure, True)
        self.assertIs(parse_endpoint("minio:9000", "ENDPOINT").secure, False)
        for malo in ("ftp://x", "http://minio:9000/bucket"):
            with self.subTest(malo=malo), self.assertRaises(ImproperlyConfigured):
                parse_endpoint(malo, "ENDPOINT")
        with override_settings(CONFRONTA_SYNC_MINIO={"ENDPOINT": "http://x:1"}):
            with self.assertRaisesRegex(ImproperlyConfigured, "ACCESS_KEY, SECRET_KEY, BUCKET"):
                minio_settings()

    def test_url_firmada_para_el_endpoint_publico_sin_peticion(self):
        # Nothing listens on port 9: presigning must be computed locally.
        ajustes = dict(BASE, ENDPOINT="http://127.0.0.1:9",
                       PUBLIC_ENDPOINT="https://descargas.example.test")
        with override_settings(CONFRONTA_SYNC_MINIO=ajustes):
            url = minio_utils.url_descarga("confrontas/venta_ñ 1.pdf", expires=timedelta(hours=2))
        partes = urlsplit(url)
        self.assertEqual((partes.scheme, partes.netloc), ("https", "descargas.example.test"))
        self.assertEqual(partes.path, "/bucket-e2e/confrontas/venta_%C3%B1%201.pdf")
        query = parse_qs(partes.query)
        self.assertEqual(query["X-Amz-Expires"], ["7200"])
        self.assertEqual(query["response-content-disposition"], [
            "attachment; filename=\"venta__ 1.pdf\"; filename*=UTF-8''venta_%C3%B1%201.pdf"])


class UrlDelModelo(TestCase):
    def test_obtener_url_descarga_confronta(self):
        venta = venta_local(usuario("agente1"))
        self.assertIsNone(venta.obtener_url_descarga_confronta())  # still local
        venta = mover_a_minio(venta)
        url = venta.obtener_url_descarga_confronta(expiry_days=1)
        self.assertTrue(url.startswith(f"http://127.0.0.1:9/telefonica-crea-online/{OBJETO}?"), url)
        self.assertEqual(parse_qs(urlsplit(url).query)["X-Amz-Expires"], ["86400"])
