from pathlib import Path

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db.migrations.loader import MigrationLoader

from ... import conf
from ...migracion import renderizar


class Command(BaseCommand):
    help = (
        "Prints (or with --escribir, writes) the migration that adds confronta_minio_url, "
        "confronta_minio_object_name, confronta_subido_a_minio and confronta_sha256 to the "
        "venta model (CONFRONTA_SYNC_MODEL, by default telefonica.VentaPortabilidad), "
        "depending on the app's latest migration."
    )
    # It runs before the fields exist and before MinIO is configured.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--solo-sha256", action="store_true",
                            help="only confronta_sha256 (the seed's three fields already exist)")
        parser.add_argument("--nombre", default="confronta_minio",
                            help="name after the number (default: confronta_minio)")
        parser.add_argument("--escribir", action="store_true",
                            help="write it into the app's migrations folder instead of printing it")

    def handle(self, *args, **options):
        model = conf.venta_model()
        app_label = model._meta.app_label
        loader = MigrationLoader(None, ignore_no_migrations=True)
        leaves = loader.graph.leaf_nodes(app_label)
        if not leaves:
            raise CommandError(f"{app_label} has no migrations yet: run makemigrations {app_label} first")
        if len(leaves) > 1:
            raise CommandError(f"{app_label} has several latest migrations {leaves}: merge them first")
        dependencia = leaves[0][1]
        texto = renderizar(app_label, dependencia, model._meta.model_name, options["solo_sha256"])
        if not options["escribir"]:
            self.stdout.write(texto, ending="")
            return
        try:
            numero = int(dependencia.split("_", 1)[0]) + 1
        except ValueError:
            numero = len(loader.graph.nodes) + 1
        carpeta = Path(apps.get_app_config(app_label).path) / "migrations"
        destino = carpeta / f"{numero:04d}_{options['nombre']}.py"
        if destino.exists():
            raise CommandError(f"{destino} already exists")
        destino.write_text(texto, encoding="utf-8")
        self.stdout.write(f"wrote {destino}")
