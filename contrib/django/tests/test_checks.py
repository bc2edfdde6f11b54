"""The system checks: missing MinIO settings warn (and fail only under --deploy), the checks
follow the app labels they are given, and a model without the mixin is an error."""

from io import StringIO

from django.apps import apps
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings


def ids(mensajes):
    return sorted(m.id for m in mensajes if m.id and m.id.startswith("confronta_sync."))


class Checks(SimpleTestCase):
    def test_configurado_no_dice_nada(self):
        self.assertEqual(ids(checks.run_checks()), [])
        self.assertEqual(ids(checks.run_checks(include_deployment_checks=True)), [])

    @override_settings()
    def test_sin_minio_es_un_aviso_que_no_bloquea(self):
        from django.conf import settings

        del settings.CONFRONTA_SYNC_MINIO
        mensajes = checks.run_checks()
        self.assertEqual(ids(mensajes), ["confronta_sync.W001"])
        aviso = next(m for m in mensajes if m.id == "confronta_sync.W001")
        self.assertEqual(aviso.level, checks.WARNING)
        # `check` (and so migrate, runserver, test) goes on: only errors stop it.
        salida = StringIO()
        call_command("check", stdout=salida, stderr=StringIO())
        # Under --deploy it is an error.
        self.assertIn("confronta_sync.E001", ids(checks.run_checks(include_deployment_checks=True)))
        with self.assertRaises(SystemCheckError):
            call_command("check", deploy=True, stdout=StringIO(), stderr=StringIO())

    @override_settings(CONFRONTA_SYNC_MINIO={"ENDPOINT": "ftp://x", "ACCESS_KEY": "k",
                                             "SECRET_KEY": "s", "BUCKET": "b"})
    def test_un_endpoint_mal_formado_tambien(self):
        self.assertEqual(ids(checks.run_checks()), ["confronta_sync.W001"])

    @override_settings()
    def test_lee_app_configs(self):
        from django.conf import settings

        del settings.CONFRONTA_SYNC_MINIO
        otra = [apps.get_app_config("auth")]
        self.assertEqual(ids(checks.run_checks(app_configs=otra)), [])
        for etiqueta in ("confronta_sync", "telefonica"):
            with self.subTest(etiqueta=etiqueta):
                propia = [apps.get_app_config(etiqueta)]
                self.assertEqual(ids(checks.run_checks(app_configs=propia)), ["confronta_sync.W001"])

    @override_settings(CONFRONTA_SYNC_MODEL="auth.Group")
    def test_un_modelo_sin_el_mixin_es_un_error(self):
        encontrados = ids(checks.run_checks())
        self.assertIn("confronta_sync.E003", encontrados)
        self.assertIn("confronta_sync.E004", encontrados)

    @override_settings(CONFRONTA_SYNC_MODEL="telefonica.NoExiste")
    def test_un_modelo_que_no_existe(self):
        self.assertEqual(ids(checks.run_checks()), ["confronta_sync.E002"])


class Expira(SimpleTestCase):
    def test_fuera_de_lo_que_s3_admite(self):
        from datetime import timedelta

        for valor in (0, -5, timedelta(days=8), "diez minutos"):
            with self.subTest(valor=valor), override_settings(CONFRONTA_SYNC_URL_EXPIRA=valor):
                self.assertIn("confronta_sync.E010", ids(checks.run_checks()))
        for valor in (1, 600, timedelta(days=7)):
            with self.subTest(valor=valor), override_settings(CONFRONTA_SYNC_URL_EXPIRA=valor):
                self.assertEqual(ids(checks.run_checks()), [])
