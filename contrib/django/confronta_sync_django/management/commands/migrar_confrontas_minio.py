"""`python manage.py migrar_confrontas_minio [--dry-run] [--limit N]`: the seed plan's catch-up
command (its section 7), for the confrontas already on disk when the sidecar is installed.

The seed's semantics: the command picks the ventas, as the plan's did (rows with a non-empty
`confronta` not yet in MinIO, by id), `--limit N` of them (`[:N]`: 0 takes none), and takes
only those whose local file exists; ventas whose file is missing are listed apart and are not
failures of this run. The dry run lists exactly the ventas the real run takes. Each venta gets
one line (`✓ venta 123 (PORTA-…): confrontas/x.pdf → objeto …`, `✗ venta 124: motivo`), then
the plan's summary; the command exits 1 when a venta it took failed.

Nothing here uploads: the installed sidecar moves exactly those ventas' files,
`confronta-sync --config <CONFRONTA_SYNC_CONFIG> --rescan --json --venta ID ... [--dry-run]`
(contract C of issue 26), with the guarantees it gives everywhere else: a local file is deleted
only after its object is verified and the row that points at it is committed.
"""

import json
import os
import shutil
import subprocess

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.utils.translation import ngettext

from ... import conf

#: The plan's default batch.
LIMITE_POR_DEFECTO = 100
#: Ventas per run of the sidecar: each is two arguments on its command line, which the kernel
#: bounds (ARG_MAX); a larger --limit runs the sidecar again for the next ones.
VENTAS_POR_EJECUCION = 500

#: What the sidecar's reasons mean, for the operator (the English detail follows each).
RAZONES = {
    "quarantined": gettext_lazy("rechazada"),
    "s3_unavailable": gettext_lazy("MinIO no responde"),
    "s3_access_denied": gettext_lazy("MinIO niega el acceso"),
    "db_unavailable": gettext_lazy("la base de datos no responde"),
    "db_row_locked": gettext_lazy("otra transacción tiene bloqueada la venta"),
    "ambiguous_owner": gettext_lazy("no se puede asegurar que el archivo sea de esta venta"),
    "several_rows": gettext_lazy("varias ventas nombran el mismo archivo"),
    "local_changed": gettext_lazy("el archivo cambió mientras se subía"),
    "row_changed": gettext_lazy("la venta cambió mientras se subía"),
    "validation_pending": gettext_lazy("no se pudo revisar el archivo todavía (clamd)"),
    "unscannable": gettext_lazy("clamd no puede revisar el archivo"),
}


def _limite(valor: str) -> int:
    numero = int(valor)  # argparse turns the ValueError into "invalid entero value"
    if numero < 0:
        raise ValueError(valor)
    return numero


_limite.__name__ = "entero"


def ventas_a_migrar(limite: int):
    """(the ventas a run takes, the ventas passed over because their file is missing): rows
    naming a local file, not in MinIO, by id, until `limite` of them have their file. The dry
    run and the real run call this alike, so they take the same ventas."""
    tomadas, sin_archivo = [], []
    if limite <= 0:
        return tomadas, sin_archivo
    pendientes = (
        conf.venta_model()._default_manager
        .filter(confronta_subido_a_minio=False)
        .exclude(confronta__isnull=True).exclude(confronta="")
        .order_by("pk")
    )
    for venta in pendientes.iterator(chunk_size=200):
        if venta.confronta.storage.exists(venta.confronta.name):
            tomadas.append(venta)
            if len(tomadas) >= limite:
                break
        else:
            sin_archivo.append(venta)
    return tomadas, sin_archivo


def resolver_binario(nombre: str) -> str:
    """The sidecar's executable: a path as given, else a name looked up on PATH (the package
    installs /usr/bin/confronta-sync, which is on every PATH a Django server runs with)."""
    if os.sep in nombre:
        if os.path.isfile(nombre) and os.access(nombre, os.X_OK):
            return nombre
        raise CommandError(
            _("No se encuentra el ejecutable de confronta-sync en %(ruta)s. Instale el paquete "
              "confronta-sync o indique su ruta en CONFRONTA_SYNC_BINARIO (o con --binario).")
            % {"ruta": nombre}
        )
    encontrado = shutil.which(nombre)
    if encontrado is None:
        raise CommandError(
            _("No se encuentra el ejecutable %(nombre)s en el PATH. Instale el paquete "
              "confronta-sync o indique su ruta en CONFRONTA_SYNC_BINARIO (o con --binario).")
            % {"nombre": nombre}
        )
    return encontrado


class Command(BaseCommand):
    help = _(
        "Migra a MinIO las confrontas que siguen en disco, venta por venta, con el servicio "
        "confronta-sync. Con --dry-run sólo muestra lo que haría."
    )
    # The sidecar checks its own configuration, the table and the bucket; Django's MinIO
    # settings (used only to presign downloads) play no part here.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=_("Ejecutar en modo de prueba sin hacer cambios reales"),
        )
        parser.add_argument(
            "--limit",
            type=_limite,
            default=LIMITE_POR_DEFECTO,
            help=_("Límite de ventas a procesar por ejecución (por defecto %(default)s)"),
        )
        parser.add_argument(
            "--binario",
            help=_("El ejecutable de confronta-sync (por defecto CONFRONTA_SYNC_BINARIO, "
                   "o confronta-sync en el PATH)"),
        )
        parser.add_argument(
            "--config",
            help=_("La configuración del servicio (por defecto CONFRONTA_SYNC_CONFIG, "
                   "o /etc/confronta-sync/config.toml)"),
        )

    def handle(self, *args, **options):
        prueba = options["dry_run"]
        tomadas, sin_archivo = ventas_a_migrar(options["limit"])
        self.stdout.write(
            ngettext(
                "Encontrada %(n)d venta con confronta pendiente de migrar",
                "Encontradas %(n)d ventas con confronta pendiente de migrar",
                len(tomadas),
            ) % {"n": len(tomadas)}
        )
        if prueba:
            self.stdout.write(
                self.style.WARNING(_("MODO DRY-RUN: No se realizarán cambios reales")))
        self._listar_sin_archivo(sin_archivo)

        cuenta = {"exitosos": 0, "errores": 0, "en_curso": 0, "sin_archivo": len(sin_archivo)}
        if tomadas:
            binario = resolver_binario(options["binario"] or conf.binario())
            config = options["config"] or conf.config_sidecar()
            for desde in range(0, len(tomadas), VENTAS_POR_EJECUCION):
                lote = tomadas[desde:desde + VENTAS_POR_EJECUCION]
                respuesta = self._ejecutar(binario, config, lote, prueba, options["verbosity"])
                if prueba:
                    self._mostrar_prueba(lote, respuesta, cuenta)
                else:
                    self._mostrar_resultados(lote, respuesta, cuenta)

        if prueba:
            self.stdout.write(
                _("\nSe migrarían %(si)d; no se migrarían %(no)d.")
                % {"si": cuenta["exitosos"], "no": cuenta["errores"]}
            )
            return
        self._resumen(cuenta)
        if cuenta["errores"]:
            raise CommandError(
                ngettext("%(n)d venta no se migró; la próxima ejecución la vuelve a intentar",
                         "%(n)d ventas no se migraron; la próxima ejecución las vuelve a intentar",
                         cuenta["errores"]) % {"n": cuenta["errores"]},
                returncode=1,
            )

    # --- the sidecar ---------------------------------------------------------------------

    def _ejecutar(self, binario, config, lote, prueba, verbosidad):
        orden = [binario, "--config", config, "--rescan", "--json"]
        for venta in lote:
            orden += ["--venta", str(venta.pk)]
        if prueba:
            orden.append("--dry-run")
        if verbosidad >= 2:
            self.stderr.write(" ".join(orden))
        try:
            # The sidecar's log lines go to stderr, which stays the terminal's: a long run
            # shows its progress as it goes. Only the JSON answer on stdout is read.
            proceso = subprocess.run(orden, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     text=True)
        except OSError as e:
            raise CommandError(
                _("No se pudo ejecutar %(binario)s: %(error)s") % {"binario": binario, "error": e}
            ) from e
        texto = proceso.stdout.strip()
        try:
            respuesta = json.loads(texto) if texto else None
        except ValueError:
            respuesta = None
        if not isinstance(respuesta, dict):
            if proceso.returncode != 0:
                # The sidecar refused to start (configuration, database, bucket, journal) or
                # its arguments: its reason is on stderr, above; its exit code says which.
                raise CommandError(
                    _("confronta-sync no pudo ejecutarse (código %(codigo)d); el motivo está en "
                      "los mensajes anteriores. Si habla de --venta, este confronta-sync es "
                      "anterior al que necesita esta versión de la app (vea Compatibility en "
                      "su README).") % {"codigo": proceso.returncode},
                    returncode=proceso.returncode,
                )
            raise CommandError(
                _("confronta-sync no devolvió un resumen JSON: %(salida)r")
                % {"salida": texto[:500]}
            )
        if proceso.returncode >= 2:
            raise CommandError(
                _("confronta-sync terminó con el código %(codigo)d")
                % {"codigo": proceso.returncode},
                returncode=proceso.returncode,
            )
        if not prueba and not isinstance(respuesta.get("results"), list):
            raise CommandError(
                _("confronta-sync no devolvió el resultado de cada venta (results): necesita la "
                  "versión que admite --rescan --venta (vea Compatibility en el README de la "
                  "app).")
            )
        return respuesta

    # --- what is printed -----------------------------------------------------------------

    def _linea(self, venta, ruta=None):
        numero = getattr(venta, "numero", None)
        return _("venta %(id)s%(numero)s: %(ruta)s") % {
            "id": venta.pk, "numero": f" ({numero})" if numero else "",
            "ruta": ruta or venta.confronta.name}

    def _listar_sin_archivo(self, ventas):
        if not ventas:
            return
        self.stdout.write(_("Ventas cuyo archivo local no existe (no se migran y no cuentan "
                            "como errores):"))
        for venta in ventas:
            self.stdout.write(self.style.WARNING(
                _("  - %(venta)s no existe") % {"venta": self._linea(venta)}))

    def _mostrar_prueba(self, lote, respuesta, cuenta):
        planes = {a.get("venta"): a for a in respuesta.get("files") or []}
        for venta in lote:
            plan = planes.get(venta.pk)
            accion = (plan or {}).get("action") or ""
            if plan and plan.get("object") and (accion.startswith("would upload")
                                                or accion.startswith("already uploaded")):
                cuenta["exitosos"] += 1
                self.stdout.write(self.style.SUCCESS(
                    _("  ✓ %(venta)s → objeto %(objeto)s")
                    % {"venta": self._linea(venta, plan.get("path")), "objeto": plan["object"]}))
            else:
                cuenta["errores"] += 1
                self.stdout.write(self.style.ERROR(
                    _("  ✗ %(venta)s: no se migraría (%(accion)s)")
                    % {"venta": self._linea(venta),
                       "accion": accion or _("sin plan del servicio")}))

    def _mostrar_resultados(self, lote, respuesta, cuenta):
        resultados = {r.get("venta_id"): r for r in respuesta["results"]}
        # The rows as the run left them: the object recorded, or the refusal's code.
        filas = conf.venta_model()._default_manager.in_bulk([v.pk for v in lote])
        for venta in lote:
            r = resultados.get(venta.pk) or {"outcome": "", "reason": None, "message": None}
            fila = filas.get(venta.pk, venta)
            resultado = r.get("outcome")
            movida = resultado in ("moved", "nothing") or (
                resultado == "missing" and fila.confronta_en_minio)  # the daemon was quicker
            if movida:
                cuenta["exitosos"] += 1
                objeto = r.get("object") or fila.confronta_minio_object_name
                texto = _("  ✓ %(venta)s → objeto %(objeto)s") % {
                    "venta": self._linea(venta), "objeto": objeto}
                if resultado != "moved":
                    texto += _(" (ya estaba en MinIO)")
                self.stdout.write(self.style.SUCCESS(texto))
            elif resultado == "missing":
                cuenta["sin_archivo"] += 1
                self.stdout.write(self.style.WARNING(
                    _("  - %(venta)s ya no existe (no cuenta como error)")
                    % {"venta": self._linea(venta)}))
            elif resultado == "busy":
                cuenta["en_curso"] += 1
                self.stdout.write(
                    _("  · %(venta)s: la está subiendo el servicio confronta-sync")
                    % {"venta": self._linea(venta)})
            else:
                cuenta["errores"] += 1
                self.stdout.write(self.style.ERROR(
                    _("  ✗ %(venta)s: %(motivo)s")
                    % {"venta": self._linea(venta), "motivo": self._motivo(r, fila)}))

    def _motivo(self, resultado, fila):
        """Why a venta did not move, in Spanish, with the sidecar's own reason and words after
        it (this is for the operator, who needs them; agents never see them)."""
        razon, detalle = resultado.get("reason"), resultado.get("message")
        if resultado.get("outcome") == "kept" and fila.confronta_rechazada:
            # The row's own text: the code and the sidecar's words.
            texto = _("rechazada: %(motivo)s") % {"motivo": fila.motivo_rechazo_confronta}
            razon, detalle = None, fila.confronta_sync_error
        elif resultado.get("outcome") == "failed":
            texto = _("falló (%(razon)s); la próxima ejecución lo vuelve a intentar") % {
                "razon": str(RAZONES.get(razon, razon or _("sin motivo")))}
        elif resultado.get("outcome") == "waiting":
            texto = _("el servicio aún no puede asegurar que el archivo sea de esta venta")
        elif resultado.get("outcome") == "kept":
            texto = _("el servicio la retiene (%(razon)s)") % {
                "razon": str(RAZONES.get(razon, razon or _("sin motivo")))}
        else:
            texto = _("el servicio no dio resultado para ella (%(resultado)s)") % {
                "resultado": resultado.get("outcome") or "-"}
        if detalle:
            texto += f" [{razon}: {detalle}]" if razon else f" [{detalle}]"
        return texto

    def _resumen(self, cuenta):
        self.stdout.write(_("\nResumen de migración:"))
        self.stdout.write(self.style.SUCCESS(_("  - Exitosos: %(n)d") % {"n": cuenta["exitosos"]}))
        estilo = self.style.ERROR if cuenta["errores"] else (lambda texto: texto)
        self.stdout.write(estilo(_("  - Errores: %(n)d") % {"n": cuenta["errores"]}))
        if cuenta["en_curso"]:
            self.stdout.write(_("  - En curso (los sube el servicio): %(n)d")
                              % {"n": cuenta["en_curso"]})
        if cuenta["sin_archivo"]:
            self.stdout.write(_("  - Sin archivo local (no se migran): %(n)d")
                              % {"n": cuenta["sin_archivo"]})
        self.stdout.write(_("  - Total procesados: %(n)d")
                          % {"n": cuenta["exitosos"] + cuenta["errores"]})
