"""The permission rule is the CRM's to choose (issue 26, item 3): CONFRONTA_SYNC_PERMISO_DESCARGA
and CONFRONTA_SYNC_PERMISO_RESUBIR name a callable `regla(user, venta)`; the default is the seed
plan's rule (tests/test_permisos.py)."""

from django.core import checks
from django.test import TestCase, override_settings

from .apoyo import usuario, venta_local


def solo_supervisores(user, venta):
    """A CRM's own rule: members of `supervision`, whoever the agent is."""
    return user.is_active and user.groups.filter(name="supervision").exists()


@override_settings(CONFRONTA_SYNC_PERMISO_DESCARGA="tests.test_regla.solo_supervisores",
                   CONFRONTA_SYNC_PERMISO_RESUBIR=solo_supervisores)
class ReglaPropia(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")
        cls.supervisor = usuario("sup", grupos=["supervision"])
        cls.backoffice = usuario("bo", grupos=["backoffice"])

    def test_la_vista_usa_la_regla_configurada(self):
        venta = venta_local(self.agente)
        descarga = f"/telefonica/venta/{venta.pk}/descargar-confronta/"
        resubir = f"/telefonica/venta/{venta.pk}/resubir-confronta-minio/"
        for user, esperado in ((self.agente, 403), (self.backoffice, 403), (self.supervisor, 200)):
            with self.subTest(user=user.username):
                self.client.force_login(user)
                self.assertEqual(self.client.get(descarga).status_code, esperado)
                self.assertEqual(self.client.post(resubir).status_code, esperado)


class ReglaMalConfigurada(TestCase):
    def test_una_ruta_que_no_importa_es_un_error(self):
        casos = {"CONFRONTA_SYNC_PERMISO_DESCARGA": "tests.no_existe.regla",
                 "CONFRONTA_SYNC_PERMISO_RESUBIR": "tests.test_regla.ReglaPropia.no_existe"}
        for ajuste, valor in casos.items():
            with self.subTest(ajuste=ajuste), override_settings(**{ajuste: valor}):
                errores = [m for m in checks.run_checks() if m.id == "confronta_sync.E009"]
                self.assertEqual(len(errores), 1)
                self.assertIn(ajuste, errores[0].msg)
