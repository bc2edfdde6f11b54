"""The most common real race: a view in a transaction (ATOMIC_REQUESTS = True in the demo
project) saves the file during form.save() and commits the row seconds later. The file must
not move before the row commits, and must move right after; and a correction committed while
the original file has not moved yet must end with the new file in MinIO and the original kept."""

import threading
import time

from apoyo import Cliente, comprobar_movida, esperar, esperar_movida, fila, pdf

ESPERA_S = 4  # how long the view sleeps after form.save(), inside its transaction


class Peticion(threading.Thread):
    """One POST in the background, so the test can look at the disk and the table meanwhile."""

    def __init__(self, hacer):
        super().__init__(daemon=True)
        self.hacer, self.respuesta, self.error = hacer, None, None

    def run(self):
        try:
            self.respuesta = self.hacer()
        except BaseException as e:  # reported by resultado()
            self.error = e

    def resultado(self):
        self.join(60)
        assert not self.is_alive(), "the slow request did not finish in 60 s"
        if self.error:
            raise self.error
        return self.respuesta


def test_slow_commit_the_file_waits_for_its_row(entorno):
    agente = Cliente(entorno.base_url).entrar("agente1")
    contenido = pdf("commit lento")
    nombre = f"lenta-{time.monotonic_ns()}.pdf"
    peticion = Peticion(lambda: agente.post(
        "/telefonica/venta/nueva/", {"cliente": "Cliente Lento", "espera": str(ESPERA_S)},
        files={"confronta": (nombre, contenido, "application/pdf")}))
    peticion.start()

    carpeta = entorno.media_root / "confrontas"
    base = nombre[:-4]
    archivo = esperar(lambda: next(iter(carpeta.glob(f"{base}*.pdf")), None), 30,
                      f"Django to save {nombre}")
    # While the view sleeps, the row is not committed: nobody else sees it, and the file stays.
    from telefonica.models import VentaPortabilidad

    # Each look checks the file first, then the table: a row still invisible at the second
    # look was not committed at the first, so the file was there while its row was not.
    vistas_sin_fila = 0
    while peticion.is_alive():
        presente = archivo.exists()
        filas = VentaPortabilidad.objects.filter(confronta=f"confrontas/{archivo.name}").count()
        if filas == 0:
            assert presente, f"{archivo} moved before its row committed\n{entorno.sidecar.cola()}"
            vistas_sin_fila += 1
        time.sleep(0.2)
    assert vistas_sin_fila >= 3, "the test hardly looked while the transaction was open"

    r = peticion.resultado()
    assert r.status_code == 302, r.text[:2000]
    # The view's own look, its last act before the commit.
    assert r.headers["X-E2E-Archivo-Antes-Del-Commit"] == "presente"
    subida = agente._subida(r)
    assert subida.guardado == f"confrontas/{archivo.name}"
    # Right after the commit: the sidecar retries a file without a row every retry_max_s (2 s
    # here), so 15 s is a bound only a stalled sidecar misses.
    esperar_movida(entorno, subida.venta_id, timeout=15)
    comprobar_movida(entorno, subida, contenido)


def test_correction_committed_while_the_original_has_not_moved(entorno):
    agente = Cliente(entorno.base_url).entrar("agente1")
    assert entorno.sidecar.parar() == 0, entorno.sidecar.cola()
    try:
        original = pdf("original sin mover")
        subida = agente.crear_venta("Cliente Corrige Pronto", "original-pronto.pdf", original)
        local_original = entorno.media_root / subida.guardado
        assert local_original.exists()

        nuevo = pdf("correccion lenta")
        peticion = Peticion(lambda: agente.post(
            f"/telefonica/venta/{subida.venta_id}/corregir/",
            {"cliente": "Cliente Corrige Pronto", "espera": str(ESPERA_S)},
            files={"confronta": ("correccion-lenta.pdf", nuevo, "application/pdf")}))
        peticion.start()
        esperar(lambda: next(iter((entorno.media_root / "confrontas").glob("correccion-lenta*.pdf")),
                             None), 30, "Django to save the correction")
        # The sidecar starts while the correction's transaction is open: it finds the original
        # file, which the committed row still names, and the row locked by the correction.
        entorno.sidecar.iniciar()
    finally:
        if not entorno.sidecar.vivo():
            entorno.sidecar.iniciar()
    r = peticion.resultado()
    assert r.headers["X-E2E-Archivo-Antes-Del-Commit"] == "presente"
    correccion = agente._subida(r)
    assert correccion.guardado != subida.guardado

    comprobar_movida(entorno, correccion, nuevo)
    f = fila(subida.venta_id)
    assert f["confronta_sync_error"] is None and f["estado_venta"] == "pendiente_revision"
    # The original lost its row before it could be recorded: a file no row points at is never
    # deleted. (The second's wait only widens the window in which a wrong delete would show.)
    time.sleep(1)
    assert local_original.exists(), entorno.sidecar.cola()
