"""`python manage.py migrar_confrontas_minio [--dry-run] [--limit N]`: the seed plan's catch-up
command (its section 7), for the confrontas already on disk when the sidecar is installed.

Nothing here uploads: it runs the installed sidecar's one-shot catch-up,
`confronta-sync --config <CONFRONTA_SYNC_CONFIG> --rescan --json --limit N [--dry-run]`, and
prints its answer the way the plan's command did (the ventas found, the dry-run listing, then
`Exitosos / Errores / Total procesados`). The sidecar does the work with the guarantees it gives
everywhere else: a local file is deleted only after its object is verified and the row that
points at it is committed. The command exits with the sidecar's code when that is not 0.
"""

import json
import os
import shutil
import subprocess

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from ... import conf

#: The plan's default batch.
LIMITE_POR_DEFECTO = 100


def _limite(valor: str) -> int:
    try:
        numero = int(valor)
    except ValueError:
        numero = 0
    if numero < 1:
        # argparse shows this text after the option's name.
        raise ValueError(valor)
    return numero


_limite.__name__ = "entero positivo"


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
        "Migra a MinIO las confrontas que siguen en disco, con el servicio confronta-sync "
        "(confronta-sync --rescan). Con --dry-run sólo muestra lo que haría."
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
            help=_("Límite de archivos a procesar por ejecución (por defecto %(default)s)"),
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
        binario = resolver_binario(options["binario"] or conf.binario())
        config = options["config"] or conf.config_sidecar()
        orden = [binario, "--config", config, "--rescan", "--json", "--limit", str(options["limit"])]
        if options["dry_run"]:
            orden.append("--dry-run")
        if options["verbosity"] >= 2:
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
        respuesta = self._leer_respuesta(proceso)
        if options["dry_run"]:
            self._mostrar_prueba(respuesta)
        else:
            self._mostrar_migracion(respuesta)
        if proceso.returncode != 0:
            raise CommandError(
                _("confronta-sync terminó con el código %(codigo)d") % {"codigo": proceso.returncode},
                returncode=proceso.returncode,
            )

    def _leer_respuesta(self, proceso):
        texto = proceso.stdout.strip()
        try:
            respuesta = json.loads(texto) if texto else None
        except ValueError:
            respuesta = None
        if isinstance(respuesta, dict):
            return respuesta
        if proceso.returncode != 0:
            # The sidecar refused to start (configuration, database, bucket, journal): its
            # reason is on stderr, above; its exit code says which (see the README).
            raise CommandError(
                _("confronta-sync no pudo ejecutarse (código %(codigo)d); el motivo está en "
                  "los mensajes anteriores") % {"codigo": proceso.returncode},
                returncode=proceso.returncode,
            )
        raise CommandError(
            _("confronta-sync no devolvió un resumen JSON: %(salida)r") % {"salida": texto[:500]}
        )

    def _mostrar_prueba(self, r):
        archivos = r.get("files") or []
        con_venta = [a for a in archivos if a.get("venta") is not None]
        self.stdout.write(
            ngettext(
                "Encontrada %(n)d venta con confronta pendiente de migrar",
                "Encontradas %(n)d ventas con confronta pendiente de migrar",
                len(con_venta),
            ) % {"n": len(con_venta)}
        )
        self.stdout.write(self.style.WARNING(_("MODO DRY-RUN: No se realizarán cambios reales")))
        for archivo in archivos:
            if archivo.get("venta") is not None:
                self.stdout.write(
                    _("  - Venta %(numero)s: %(ruta)s (%(accion)s)")
                    % {"numero": archivo.get("numero") or archivo["venta"],
                       "ruta": archivo.get("path"), "accion": archivo.get("action")}
                )
            else:
                self.stdout.write(
                    _("  - Sin venta: %(ruta)s (%(accion)s)")
                    % {"ruta": archivo.get("path"), "accion": archivo.get("action")}
                )
        for problema in r.get("rows_missing_their_file") or []:
            self.stdout.write(self.style.ERROR(_("  - Falta el archivo: %(problema)s")
                                               % {"problema": problema}))
        self.stdout.write(
            _("\nSe migrarían %(mover)d (%(bytes)d bytes); se omitirían %(omitir)d.")
            % {"mover": r.get("would_move", 0), "bytes": r.get("bytes", 0),
               "omitir": r.get("would_skip", 0)}
        )

    def _mostrar_migracion(self, r):
        # The sidecar reports once the batch is done: the ventas it found are those it moved
        # or failed to move (files no venta points at are counted apart, as skipped).
        encontradas = int(r.get("succeeded", 0)) + int(r.get("failed_total", 0))
        self.stdout.write(
            ngettext(
                "Encontrada %(n)d venta con confronta pendiente de migrar",
                "Encontradas %(n)d ventas con confronta pendiente de migrar",
                encontradas,
            ) % {"n": encontradas}
        )
        for problema in r.get("problems") or []:
            self.stdout.write(self.style.ERROR(_("  ❌ %(problema)s") % {"problema": problema}))
        exitosos = int(r.get("succeeded", 0))
        errores = int(r.get("failed_total", 0))
        omitidos = int(r.get("skipped", 0))
        self.stdout.write(_("\nResumen de migración:"))
        self.stdout.write(self.style.SUCCESS(_("  - Exitosos: %(n)d") % {"n": exitosos}))
        estilo = self.style.ERROR if errores else (lambda texto: texto)
        self.stdout.write(estilo(_("  - Errores: %(n)d") % {"n": errores}))
        if omitidos:
            # Files no venta points at, or held by the running daemon at that moment.
            self.stdout.write(_("  - Omitidos (sin venta o en curso): %(n)d") % {"n": omitidos})
        self.stdout.write(_("  - Total procesados: %(n)d") % {"n": exitosos + errores})
