"""Helpers of the end-to-end tests: the servers, an HTTP client that behaves like a browser
form, and waiting for the sidecar."""

import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import requests

CLAVE = "clave-e2e-123"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pdf(texto: str, relleno: int = 0) -> bytes:
    """A small valid PDF showing `texto`, made unique by a random comment, padded with
    `relleno` bytes of random comment lines (a PDF reader ignores them)."""
    contenido = f"BT /F1 18 Tf 40 100 Td ({texto}) Tj ET".encode("latin-1")
    objetos = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(contenido) + contenido + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    salida = bytearray(b"%PDF-1.4\n%" + secrets.token_hex(8).encode() + b"\n")
    offsets = []
    for numero, cuerpo in enumerate(objetos, start=1):
        offsets.append(len(salida))
        salida += b"%d 0 obj\n" % numero + cuerpo + b"\nendobj\n"
    xref = len(salida)
    salida += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objetos) + 1)
    for offset in offsets:
        salida += b"%010d 00000 n \n" % offset
    salida += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objetos) + 1,
        xref,
    )
    while relleno > 0:
        n = min(relleno, 4096)
        salida += b"%" + secrets.token_hex(n // 2 + 1).encode()[: max(n - 2, 0)] + b"\n"
        relleno -= max(n, 2)
    return bytes(salida)


def esperar(condicion: Callable[[], object], timeout: float, que: str, cada: float = 0.1,
            detalle: Callable[[], str] = lambda: ""):
    """Polls `condicion` until it returns something truthy, which it returns."""
    limite = time.monotonic() + timeout
    while True:
        valor = condicion()
        if valor:
            return valor
        if time.monotonic() > limite:
            raise AssertionError(f"timed out after {timeout}s waiting for {que}\n{detalle()}")
        time.sleep(cada)


def puerto_libre() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cola(path: Path, lineas: int = 60) -> str:
    try:
        texto = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return f"--- last lines of {path} ---\n" + "\n".join(texto[-lineas:])


class Proceso:
    """A server process in its own session (so its whole group can be stopped), with its output
    in a log file and its pid where run.sh can find it if the run is interrupted."""

    def __init__(self, nombre: str, args, env, log: Path, pids: Path, cwd: Optional[Path] = None):
        self.nombre, self.args, self.env, self.log, self.cwd = nombre, args, env, log, cwd
        self.pidfile = pids / f"{nombre}.pid"
        self.popen: Optional[subprocess.Popen] = None

    def iniciar(self):
        assert self.popen is None or self.popen.poll() is not None, f"{self.nombre} already runs"
        with open(self.log, "ab") as salida:
            self.popen = subprocess.Popen(
                self.args, env=self.env, cwd=self.cwd, stdout=salida, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        self.pidfile.write_text(str(self.popen.pid))

    def vivo(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def parar(self, timeout: float = 20) -> Optional[int]:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code (None if never started)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # anything it left behind
        except ProcessLookupError:
            pass
        self.pidfile.unlink(missing_ok=True)
        return self.popen.returncode


class Sidecar(Proceso):
    def __init__(self, binario: str, config: Path, env, log: Path, pids: Path):
        super().__init__("confronta-sync", [binario, "--config", str(config)], env, log, pids)
        self.binario, self.config = binario, config

    def comando(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.binario, "--config", str(self.config), *args],
            env=self.env, capture_output=True, text=True, timeout=60,
        )

    def iniciar(self):
        inicio = self.log.stat().st_size if self.log.exists() else 0
        super().iniciar()

        def listo():
            if not self.vivo():
                raise AssertionError(f"confronta-sync exited with {self.popen.returncode}\n{cola(self.log)}")
            with open(self.log, "rb") as f:
                f.seek(inicio)
                return b"watching" in f.read()

        esperar(listo, 30, "confronta-sync to start watching", detalle=lambda: cola(self.log))

    def cola(self) -> str:
        return cola(self.log)


@dataclass
class Subida:
    venta_id: int
    guardado: str  # the path Django saved, relative to MEDIA_ROOT
    clase: str  # the UploadedFile class that took it


class Cliente:
    """A logged-in user talking to the server the way the HTML forms do."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.s = requests.Session()
        self.usuario = None

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base_url + path

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 30)
        return self.s.get(self.url(path), **kw)

    def post(self, path: str, data=None, files=None, **kw) -> requests.Response:
        kw.setdefault("allow_redirects", False)
        kw.setdefault("timeout", 60)
        data = dict(data or {})
        token = self.s.cookies.get("csrftoken")
        if token is None:
            self.get(path)  # a form page sets the cookie
            token = self.s.cookies.get("csrftoken")
        data["csrfmiddlewaretoken"] = token
        return self.s.post(self.url(path), data=data, files=files,
                           headers={"Referer": self.url(path)}, **kw)

    def entrar(self, usuario: str, clave: str = CLAVE) -> "Cliente":
        r = self.get("/accounts/login/")
        assert r.status_code == 200, r.text
        r = self.post("/accounts/login/", {"username": usuario, "password": clave, "next": "/"})
        assert r.status_code == 302 and r.headers["Location"] == "/", (
            f"login of {usuario} failed: {r.status_code} {r.text[:500]}"
        )
        self.usuario = usuario
        return self

    def _subida(self, r: requests.Response) -> Subida:
        assert r.status_code == 302, f"{r.status_code}: {r.text[:2000]}"
        return Subida(
            venta_id=int(r.headers["X-E2E-Venta"]),
            guardado=r.headers.get("X-E2E-Confronta", ""),
            clase=r.headers.get("X-E2E-Upload-Class", ""),
        )

    def crear_venta(self, cliente: str, nombre: str, contenido: bytes,
                    tipo: str = "application/pdf") -> Subida:
        r = self.post("/telefonica/venta/nueva/", {"cliente": cliente},
                      files={"confronta": (nombre, contenido, tipo)})
        return self._subida(r)

    def corregir(self, venta_id: int, cliente: str, nombre: Optional[str] = None,
                 contenido: Optional[bytes] = None) -> Subida:
        files = {"confronta": (nombre, contenido, "application/pdf")} if nombre else None
        r = self.post(f"/telefonica/venta/{venta_id}/corregir/", {"cliente": cliente}, files=files)
        return self._subida(r)

    def detalle(self, venta_id: int) -> str:
        r = self.get(f"/telefonica/venta/{venta_id}/")
        assert r.status_code == 200, r.status_code
        return r.text


def mensajes(html: str):
    """The texts of the django.contrib.messages shown on a page."""
    bloques = re.findall(r'<div class="mensaje[^"]*">(.*?)</div>', html, re.DOTALL)
    return [re.sub(r"\s+", " ", m).strip() for m in bloques]


# --- the sales table and the bucket ----------------------------------------------------------

CAMPOS = ("id", "numero", "confronta", "confronta_minio_url", "confronta_minio_object_name",
          "confronta_subido_a_minio", "confronta_sha256", "confronta_sync_error",
          "confronta_asignada_en", "cliente", "estado_venta")


def fila(venta_id):
    from telefonica.models import VentaPortabilidad

    return VentaPortabilidad.objects.filter(pk=venta_id).values(*CAMPOS).get()


def esperar_movida(entorno, venta_id, objeto_anterior=None, timeout=30):
    """Waits until the sidecar recorded an object (other than `objeto_anterior`) for the venta."""

    def movida():
        f = fila(venta_id)
        return (f["confronta_subido_a_minio"] and not f["confronta"]
                and f["confronta_minio_object_name"]
                and f["confronta_minio_object_name"] != objeto_anterior) and f

    return esperar(movida, timeout, f"the sidecar to move venta {venta_id}'s confronta",
                   detalle=lambda: f"row: {fila(venta_id)}\n{entorno.sidecar.cola()}")


def comprobar_movida(entorno, subida, contenido):
    """The row points at an object holding exactly `contenido`, and the local file is gone."""
    f = esperar_movida(entorno, subida.venta_id)
    digest = sha256(contenido)
    ext = re.search(r"(\.[^./]+)$", subida.guardado).group(1).lower()
    esperado = f"{entorno.prefijo}confrontas/venta_{f['numero']}_confronta_{f['id']}_{digest[:12]}{ext}"
    assert f["confronta_minio_object_name"] == esperado
    assert f["confronta_sha256"] == digest
    assert f["confronta_minio_url"] == f"{entorno.s3_endpoint}/{entorno.bucket}/{esperado}"
    assert f["confronta"] == ""
    respuesta = entorno.minio().get_object(entorno.bucket, esperado)
    try:
        assert respuesta.read() == contenido
    finally:
        respuesta.close()
        respuesta.release_conn()
    # The row is committed first, the local file unlinked right after.
    local = entorno.media_root / subida.guardado
    esperar(lambda: not local.exists(), 10, f"the sidecar to delete {local}",
            detalle=entorno.sidecar.cola)
    return f


def descargar(cliente, venta_id):
    """Follows the download view's redirect like a browser: returns (presigned URL, response)."""
    r = cliente.get(f"/telefonica/venta/{venta_id}/descargar-confronta/")
    assert r.status_code == 302, f"{r.status_code}: {r.text[:500]}"
    url = r.headers["Location"]
    assert "no-store" in r.headers.get("Cache-Control", ""), r.headers
    return url, requests.get(url, timeout=30)


def ejecutable_disfrazado() -> bytes:
    """A Windows executable's first bytes under a .pdf name: the sidecar's magic-byte check
    refuses it."""
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + secrets.token_bytes(512)


def venta_sin_formulario(usuario: str, cliente: str, nombre: str, contenido: bytes) -> Subida:
    """A venta whose file reached MEDIA_ROOT without the companion's form validation (a script,
    an API, a form of the CRM's that skips full_clean): the model's save() alone, as Django
    code would do it. The sidecar still checks the file."""
    from django.contrib.auth.models import User
    from django.core.files.base import ContentFile

    from telefonica.models import VentaPortabilidad

    venta = VentaPortabilidad(cliente=cliente, agente=User.objects.get(username=usuario))
    venta.confronta.save(nombre, ContentFile(contenido), save=False)
    venta.save()
    return Subida(venta_id=venta.pk, guardado=venta.confronta.name, clase="")


def esperar_rechazo(entorno, venta_id, timeout=30):
    """Waits until the sidecar refused the venta's file: the row no longer names it and says why."""

    def rechazada():
        f = fila(venta_id)
        return (not f["confronta"] and f["confronta_sync_error"]) and f

    return esperar(rechazada, timeout, f"the sidecar to refuse venta {venta_id}'s confronta",
                   detalle=lambda: f"row: {fila(venta_id)}\n{entorno.sidecar.cola()}")
