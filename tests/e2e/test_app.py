"""The companion app's edges that need no sidecar: settings, presigning without a request, and
the download view when MinIO cannot be reached. In-process, on the e2e database."""

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from confronta_sync_django import minio_utils
from confronta_sync_django.conf import minio_settings, parse_endpoint

from apoyo import mensajes

BASE = {"ACCESS_KEY": "k", "SECRET_KEY": "s", "BUCKET": "bucket-e2e", "REGION": "us-east-1"}


def test_endpoints_parse_and_reject_paths():
    assert parse_endpoint("http://127.0.0.1:9000", "ENDPOINT").host == "127.0.0.1:9000"
    assert parse_endpoint("https://minio.example.test", "ENDPOINT").secure is True
    assert parse_endpoint("minio:9000", "ENDPOINT").secure is False
    for malo in ("ftp://x", "http://minio:9000/bucket"):
        with pytest.raises(ImproperlyConfigured):
            parse_endpoint(malo, "ENDPOINT")
    with override_settings(CONFRONTA_SYNC_MINIO={"ENDPOINT": "http://x:1"}):
        with pytest.raises(ImproperlyConfigured, match="ACCESS_KEY, SECRET_KEY, BUCKET"):
            minio_settings()


def test_presigned_urls_are_signed_for_the_public_endpoint_without_a_request():
    # Nothing listens on port 9: presigning must be computed locally.
    ajustes = dict(BASE, ENDPOINT="http://127.0.0.1:9", PUBLIC_ENDPOINT="https://descargas.example.test")
    with override_settings(CONFRONTA_SYNC_MINIO=ajustes):
        url = minio_utils.url_descarga("confrontas/venta_ñ 1.pdf", expires=timedelta(hours=2))
    partes = urlsplit(url)
    assert (partes.scheme, partes.netloc) == ("https", "descargas.example.test")
    assert partes.path == "/bucket-e2e/confrontas/venta_%C3%B1%201.pdf"
    query = parse_qs(partes.query)
    assert query["X-Amz-Expires"] == ["7200"]
    assert query["response-content-disposition"] == [
        "attachment; filename=\"venta__ 1.pdf\"; filename*=UTF-8''venta_%C3%B1%201.pdf"
    ]


def test_download_view_says_so_when_minio_is_unreachable(entorno):
    from django.contrib.auth.models import User
    from telefonica.models import VentaPortabilidad

    agente = User.objects.get(username="agente1")
    venta = VentaPortabilidad.objects.create(
        cliente="Sin MinIO", agente=agente, confronta="",
        confronta_subido_a_minio=True, confronta_minio_object_name="confrontas/x.pdf",
        confronta_minio_url="http://127.0.0.1:9/bucket-e2e/confrontas/x.pdf",
    )
    try:
        cliente = Client(HTTP_HOST="127.0.0.1")
        cliente.force_login(agente)
        ajustes = dict(BASE, ENDPOINT="http://127.0.0.1:9", TIMEOUT_S=1)
        with override_settings(CONFRONTA_SYNC_MINIO=ajustes):
            r = cliente.get(f"/telefonica/venta/{venta.pk}/descargar-confronta/")
            assert r.status_code == 302 and r["Location"] == f"/telefonica/venta/{venta.pk}/"
            html = cliente.get(r["Location"]).content.decode()
            assert any("No se pudo contactar con MinIO" in m for m in mensajes(html)), html
            # The model's own helper presigns without asking MinIO.
            assert venta.obtener_url_descarga_confronta(expiry_days=1).startswith(
                "http://127.0.0.1:9/bucket-e2e/confrontas/x.pdf?")
    finally:
        venta.delete()
