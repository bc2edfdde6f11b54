"""Checks in a real browser: headless Chromium logs in, opens a venta's detail page, clicks
"Descargar Confronta", and the file it downloads is the confronta's exact bytes, from MinIO
and, while it is still local, from the permission-checked view; and a refused confronta is
shown with its reason, then replaced through the correction form."""

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from apoyo import (
    CLAVE,
    Cliente,
    comprobar_movida,
    ejecutable_disfrazado,
    esperar,
    esperar_movida,
    esperar_rechazo,
    pdf,
    sha256,
    venta_sin_formulario,
)


@pytest.fixture
def chromium(entorno, tmp_path):
    descargas = entorno.work / "descargas"
    opciones = webdriver.ChromeOptions()
    opciones.binary_location = entorno.chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
                f"--user-data-dir={tmp_path / 'perfil'}"):
        opciones.add_argument(arg)
    opciones.add_experimental_option("prefs", {
        "download.default_directory": str(descargas),
        "download.prompt_for_download": False,
        "plugins.always_open_pdf_externally": True,
    })
    servicio = Service(executable_path=entorno.chromedriver,
                       log_output=str(entorno.work / "logs" / "chromedriver.log"))
    driver = webdriver.Chrome(options=opciones, service=servicio)
    driver.set_page_load_timeout(30)
    # Headless Chromium saves downloads only where it is told to, for every tab.
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(descargas)})
    try:
        yield driver, descargas
    finally:
        driver.quit()


def test_browser_downloads_the_confronta(entorno, chromium):
    driver, descargas = chromium
    contenido = pdf("confronta en el navegador")
    subida = Cliente(entorno.base_url).entrar("agente1").crear_venta(
        "Cliente Navegador", "navegador.pdf", contenido)
    fila = comprobar_movida(entorno, subida, contenido)
    nombre = fila["confronta_minio_object_name"].rsplit("/", 1)[1]

    detalle = f"{entorno.base_url}/telefonica/venta/{subida.venta_id}/"
    driver.get(f"{entorno.base_url}/accounts/login/?next=/telefonica/venta/{subida.venta_id}/")
    driver.find_element(By.NAME, "username").send_keys("agente1")
    driver.find_element(By.NAME, "password").send_keys(CLAVE)
    driver.find_element(By.ID, "entrar").click()
    WebDriverWait(driver, 20).until(EC.url_to_be(detalle))

    enlace = WebDriverWait(driver, 20).until(
        EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Descargar Confronta")))
    assert "Archivo almacenado en MinIO" in driver.find_element(By.ID, "confronta").text
    entorno.artifacts.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(entorno.artifacts / "detalle_venta.png"))

    enlace.click()
    destino = descargas / nombre

    def descargado():
        parciales = list(descargas.glob("*.crdownload"))
        return destino.exists() and not parciales and destino.stat().st_size == len(contenido)

    esperar(descargado, 30, f"Chromium to download {nombre}",
            detalle=lambda: f"in {descargas}: {sorted(p.name for p in descargas.iterdir())}")
    assert sha256(destino.read_bytes()) == sha256(contenido)
    assert destino.read_bytes() == contenido


def test_browser_downloads_a_local_confronta_through_the_view(entorno, chromium):
    """While the file is still local (the sidecar stopped), "Descargar Confronta" goes to the
    permission-checked view, which serves the file itself: no /media/ URL on the page."""
    driver, descargas = chromium
    assert entorno.sidecar.parar() == 0, entorno.sidecar.cola()
    try:
        contenido = pdf("confronta local en el navegador")
        subida = Cliente(entorno.base_url).entrar("agente1").crear_venta(
            "Cliente Local", "local-navegador.pdf", contenido)
        nombre = subida.guardado.rsplit("/", 1)[1]
        destino = f"/telefonica/venta/{subida.venta_id}/"
        _entrar(driver, entorno, destino)
        enlace = WebDriverWait(driver, 20).until(
            EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Descargar Confronta")))
        assert "Archivo local" in driver.find_element(By.ID, "confronta").text
        assert enlace.get_attribute("href") == (
            f"{entorno.base_url}/telefonica/venta/{subida.venta_id}/descargar-confronta/")
        assert "/media/" not in driver.page_source
        entorno.artifacts.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(entorno.artifacts / "confronta_local.png"))

        enlace.click()
        archivo = descargas / nombre

        def descargado():
            parciales = list(descargas.glob("*.crdownload"))
            return archivo.exists() and not parciales and archivo.stat().st_size == len(contenido)

        esperar(descargado, 30, f"Chromium to download {nombre}",
                detalle=lambda: f"in {descargas}: {sorted(p.name for p in descargas.iterdir())}")
        assert archivo.read_bytes() == contenido
    finally:
        entorno.sidecar.iniciar()
    comprobar_movida(entorno, subida, contenido)


def _entrar(driver, entorno, destino):
    driver.get(f"{entorno.base_url}/accounts/login/?next={destino}")
    driver.find_element(By.NAME, "username").send_keys("agente1")
    driver.find_element(By.NAME, "password").send_keys(CLAVE)
    driver.find_element(By.ID, "entrar").click()
    WebDriverWait(driver, 20).until(EC.url_to_be(entorno.base_url + destino))


def test_browser_shows_a_rejected_confronta_and_takes_a_new_one(entorno, chromium, tmp_path):
    """A file the sidecar refused (it reached the folder without the form's check) is shown
    with the Spanish reason of its code (contract B); the correction form refuses, in Spanish,
    another bad file before saving it, and takes a PDF, which then moves."""
    driver, _ = chromium
    subida = venta_sin_formulario("agente1", "Cliente Rechazado", "escaneo.pdf",
                                  ejecutable_disfrazado())
    motivo = esperar_rechazo(entorno, subida.venta_id)["confronta_sync_error"]
    assert motivo.startswith("content_not_allowed: "), f"no contract B code in {motivo!r}"

    _entrar(driver, entorno, f"/telefonica/venta/{subida.venta_id}/")
    aviso = WebDriverWait(driver, 20).until(
        EC.visibility_of_element_located((By.ID, "confronta-rechazada")))
    assert "Confronta rechazada: El contenido del archivo no es de un tipo admitido." in aviso.text
    assert "Suba una confronta nueva" in aviso.text
    assert "allowed_types" not in driver.page_source and motivo not in driver.page_source
    assert not driver.find_elements(By.ID, "descargar-confronta")
    entorno.artifacts.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(entorno.artifacts / "confronta_rechazada.png"))

    # "Subir una confronta nueva" leads to the correction form. Another executable is refused
    # there, before anything is saved; a real PDF goes through.
    driver.find_element(By.ID, "subir-nueva-confronta").click()
    campo = WebDriverWait(driver, 20).until(EC.presence_of_element_located((By.NAME, "confronta")))
    mala = tmp_path / "otra.pdf"
    mala.write_bytes(ejecutable_disfrazado())
    campo.send_keys(str(mala))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = WebDriverWait(driver, 20).until(
        EC.visibility_of_element_located((By.ID, "confronta-error")))
    assert error.text == ("El contenido del archivo no es de un tipo admitido. "
                          "Tipos admitidos: PDF, JPG, PNG.")
    driver.save_screenshot(str(entorno.artifacts / "formulario_rechazado.png"))
    assert not list((entorno.media_root / "confrontas").glob("otra*.pdf"))

    campo = driver.find_element(By.NAME, "confronta")
    buena = tmp_path / "buena.pdf"
    contenido = pdf("nueva desde el navegador")
    buena.write_bytes(contenido)
    campo.send_keys(str(buena))
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(driver, 20).until(
        EC.url_to_be(f"{entorno.base_url}/telefonica/venta/{subida.venta_id}/"))
    fila = esperar_movida(entorno, subida.venta_id)
    assert fila["confronta_sync_error"] is None
    driver.refresh()
    assert "Archivo almacenado en MinIO" in driver.find_element(By.ID, "confronta").text
