"""What the installed package carries (issue 26, item 7): the licence, the typing marker, and
the version; built from this tree the way pip builds it."""

import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from django.test import SimpleTestCase

import confronta_sync_django

APP = Path(__file__).resolve().parents[1]


class Paquete(SimpleTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        carpeta = Path(tempfile.mkdtemp(prefix="confronta-sync-django-rueda-"))
        cls.addClassCleanup(shutil.rmtree, carpeta, True)
        # A copy, so that no build folder lands in the tree.
        fuente = carpeta / "fuente"
        shutil.copytree(APP, fuente, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info",
                                                                    "build", "dist"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(carpeta), str(fuente)],
                       check=True, capture_output=True)
        rueda = next(carpeta.glob("confronta_sync_django-*.whl"))
        with zipfile.ZipFile(rueda) as z:
            cls.archivos = set(z.namelist())
            cls.metadatos = z.read(next(n for n in cls.archivos
                                        if n.endswith(".dist-info/METADATA"))).decode()
        cls.nombre = rueda.name

    def test_licencia_tipos_y_version(self):
        self.assertIn("confronta_sync_django/py.typed", self.archivos)
        for catalogo in ("django.po", "django.mo"):
            self.assertIn(f"confronta_sync_django/locale/es/LC_MESSAGES/{catalogo}", self.archivos)
        self.assertTrue(any(n.endswith("LICENSE") for n in self.archivos), sorted(self.archivos))
        self.assertIn(f"confronta_sync_django-{confronta_sync_django.__version__}-", self.nombre)
        self.assertIn("License: MIT", self.metadatos)
        self.assertIn("Framework :: Django :: 4.2", self.metadatos)
