"""Who may download a venta's confronta, and who may mark it for re-upload."""

from django.contrib.auth.models import AnonymousUser
from django.test import TestCase

from confronta_sync_django.permisos import puede_descargar_confronta, puede_resubir_confronta

from .apoyo import usuario, venta_local


class Permisos(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")
        cls.otro = usuario("agente2")
        cls.backoffice = usuario("bo", grupos=["backoffice"])
        cls.admin = usuario("adm", grupos=["ADMINISTRADOR"])  # any case
        cls.jefe = usuario("jefe", superuser=True)
        cls.inactivo = usuario("viejo", grupos=["backoffice"], activo=False)
        cls.inactivo_dueno = usuario("dueno-inactivo", activo=False)
        cls.casi = usuario("casi", grupos=["Backoffice2", "administradores"])
        cls.venta = venta_local(cls.agente)

    def test_descargar(self):
        esperado = {
            self.agente: True,
            self.backoffice: True,
            self.admin: True,
            self.jefe: True,
            self.otro: False,
            self.inactivo: False,
            self.casi: False,
            AnonymousUser(): False,
        }
        for user, permitido in esperado.items():
            with self.subTest(user=str(user)):
                self.assertIs(puede_descargar_confronta(user, self.venta), permitido)

    def test_el_agente_inactivo_no_descarga_su_propia_venta(self):
        self.venta.agente = self.inactivo_dueno
        self.assertFalse(puede_descargar_confronta(self.inactivo_dueno, self.venta))

    def test_resubir_es_de_backoffice_administrador_o_superusuario(self):
        esperado = {
            self.agente: False,  # the agent may download, not re-upload
            self.backoffice: True,
            self.admin: True,
            self.jefe: True,
            self.otro: False,
            self.inactivo: False,
            AnonymousUser(): False,
        }
        for user, permitido in esperado.items():
            with self.subTest(user=str(user)):
                self.assertIs(puede_resubir_confronta(user, self.venta), permitido)
