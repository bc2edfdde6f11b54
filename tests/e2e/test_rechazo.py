"""What the sidecar would refuse is refused in the form first, in Spanish, by the rules of the
sidecar's own config file; a file that reached the folder another way and that the sidecar
refused is shown with the Spanish reason of its code (contract B), never the sidecar's English
(limits, signatures); a new file through the correction form moves as usual and clears the
reason. The browser's view of the same states is in test_navegador.py."""

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
    venta_sin_formulario,
)

ADMITIDOS = "Tipos admitidos: PDF, JPG, PNG."  # the sidecar's config in conftest.py


def test_the_form_refuses_what_the_sidecar_would(entorno):
    agente = Cliente(entorno.base_url).entrar("agente1")
    antes = set((entorno.media_root / "confrontas").iterdir())
    casos = {
        ("factura.pdf", ejecutable_disfrazado()):
            "El contenido del archivo no es de un tipo admitido. " + ADMITIDOS,
        # TIFF is allowed by the sidecar's defaults, not by this sidecar's config: the form
        # read the config.
        ("fax.tif", b"II*\x00\x08\x00\x00\x00" + bytes(600)):
            "Ese tipo de archivo no se admite. " + ADMITIDOS,
    }
    for (nombre, contenido), esperado in casos.items():
        r = agente.post("/telefonica/venta/nueva/", {"cliente": "Cliente Formulario"},
                        files={"confronta": (nombre, contenido, "application/pdf")})
        assert r.status_code == 200, r.status_code  # the form again, with its error
        assert esperado in re.sub(r"\s+", " ", r.text), r.text[:3000]
    # Nothing was saved: no file for the sidecar, no venta.
    assert set((entorno.media_root / "confrontas").iterdir()) == antes
    from telefonica.models import VentaPortabilidad

    assert not VentaPortabilidad.objects.filter(cliente="Cliente Formulario").exists()


def test_a_refused_file_is_shown_with_its_spanish_reason_and_replaced(entorno):
    # Contract B: the sidecar writes `<code>: <english detail>`.
    agente = Cliente(entorno.base_url).entrar("agente1")
    subida = venta_sin_formulario("agente1", "Cliente Rechazo", "factura.pdf", ejecutable_disfrazado())
    f = esperar_rechazo(entorno, subida.venta_id)
    motivo = f["confronta_sync_error"]
    assert re.match(r"^content_not_allowed: .*allowed_types", motivo), (
        f"the sidecar wrote {motivo!r}, without contract B's code")
    assert f["confronta_subido_a_minio"] is False and f["confronta_minio_object_name"] is None
    # Out of MEDIA_ROOT (which no URL serves), into the quarantine beside the journal.
    esperar(lambda: not (entorno.media_root / subida.guardado).exists(), 10,
            "the refused file to leave MEDIA_ROOT", detalle=entorno.sidecar.cola)
    assert (entorno.work / "sidecar" / "quarantine" / subida.guardado).exists()

    espanol = "El contenido del archivo no es de un tipo admitido."
    html = re.sub(r"\s+", " ", agente.detalle(subida.venta_id))
    assert f"Confronta rechazada: {espanol}" in html
    assert "Suba una confronta nueva" in html
    assert f'href="/telefonica/venta/{subida.venta_id}/corregir/"' in html
    assert "Archivo local" not in html and "/media/" not in html
    for interno in ("content_not_allowed", "allowed_types", "portable-executable", motivo):
        assert interno not in html

    r = agente.get(f"/telefonica/venta/{subida.venta_id}/descargar-confronta/")
    assert r.status_code == 302 and r.headers["Location"] == f"/telefonica/venta/{subida.venta_id}/"
    avisos = mensajes(agente.detalle(subida.venta_id))
    assert f"Confronta rechazada: {espanol} Suba una confronta nueva corrigiendo la venta." in avisos

    # The correction page says so too, and a new file moves as usual and clears the reason.
    r = agente.get(f"/telefonica/venta/{subida.venta_id}/corregir/")
    assert f"Confronta rechazada: {espanol}" in re.sub(r"\s+", " ", r.text)
    contenido = pdf("la buena")
    correccion = agente.corregir(subida.venta_id, "Cliente Rechazo", "factura-buena.pdf", contenido)
    comprobar_movida(entorno, correccion, contenido)
    assert fila(subida.venta_id)["confronta_sync_error"] is None
    html = agente.detalle(subida.venta_id)
    assert "Archivo almacenado en MinIO" in html and "Confronta rechazada" not in html
