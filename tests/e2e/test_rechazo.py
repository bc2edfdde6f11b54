"""A file the sidecar refuses (an executable named .pdf) is visible in Django: the row says why,
the detail page shows "Confronta rechazada: <motivo>" and asks for a new upload, the download
view answers with the reason, and a new file through the correction form moves as usual and
clears the reason. The browser's view of the same state is in test_navegador.py."""

import re

from apoyo import (
    Cliente,
    comprobar_movida,
    ejecutable_disfrazado,
    esperar,
    esperar_rechazo,
    fila,
    mensajes,
    pdf,
)


def test_rejected_file_is_shown_with_its_reason_and_replaced_by_a_correction(entorno):
    agente = Cliente(entorno.base_url).entrar("agente1")
    subida = agente.crear_venta("Cliente Rechazo", "factura.pdf", ejecutable_disfrazado())
    f = esperar_rechazo(entorno, subida.venta_id)
    motivo = f["confronta_sync_error"]
    assert "allowed_types" in motivo, motivo
    assert f["confronta_subido_a_minio"] is False and f["confronta_minio_object_name"] is None
    # Out of MEDIA_ROOT (which Django serves), into the quarantine beside the journal.
    esperar(lambda: not (entorno.media_root / subida.guardado).exists(), 10,
            "the refused file to leave MEDIA_ROOT", detalle=entorno.sidecar.cola)
    assert (entorno.work / "sidecar" / "quarantine" / subida.guardado).exists()

    html = re.sub(r"\s+", " ", agente.detalle(subida.venta_id))
    assert f"Confronta rechazada: {motivo}" in html
    assert "Suba una confronta nueva" in html
    assert f'href="/telefonica/venta/{subida.venta_id}/corregir/"' in html
    assert "Archivo local" not in html and "/media/" not in html

    r = agente.get(f"/telefonica/venta/{subida.venta_id}/descargar-confronta/")
    assert r.status_code == 302 and r.headers["Location"] == f"/telefonica/venta/{subida.venta_id}/"
    avisos = mensajes(agente.detalle(subida.venta_id))
    assert any(m.startswith(f"Confronta rechazada: {motivo}") for m in avisos), avisos
    assert not any("se está subiendo" in m for m in avisos), avisos

    # The correction page says so too, and a new file moves as usual and clears the reason.
    r = agente.get(f"/telefonica/venta/{subida.venta_id}/corregir/")
    assert "Confronta rechazada" in r.text
    contenido = pdf("la buena")
    correccion = agente.corregir(subida.venta_id, "Cliente Rechazo", "factura-buena.pdf", contenido)
    comprobar_movida(entorno, correccion, contenido)
    assert fila(subida.venta_id)["confronta_sync_error"] is None
    html = agente.detalle(subida.venta_id)
    assert "Archivo almacenado en MinIO" in html and "Confronta rechazada" not in html
