"""The admin helpers: the sidecar's columns read-only, the state column and filter, and the link
to the permission-checked download view."""

import re

from django.contrib.admin.sites import site
from django.contrib.auth.models import Permission
from django.test import RequestFactory, TestCase

from tests.telefonica.models import VentaPortabilidad

from .apoyo import mover_a_minio, rechazar, usuario, venta_local


class Admin(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.jefe = usuario("jefe", superuser=True)
        cls.local = venta_local(cls.jefe, "l.pdf")
        cls.minio = mover_a_minio(venta_local(cls.jefe, "m.pdf"))
        cls.rechazada = rechazar(venta_local(cls.jefe, "r.pdf"),
                                 "type_not_allowed: extension .exe is not in allowed_types")

    def setUp(self):
        self.client.force_login(self.jefe)

    def test_columnas_del_sidecar_de_solo_lectura(self):
        r = self.client.get(f"/admin/telefonica/ventaportabilidad/{self.minio.pk}/change/")
        self.assertEqual(r.status_code, 200)
        form = r.context["adminform"].form
        for campo in ("confronta_minio_url", "confronta_minio_object_name",
                      "confronta_subido_a_minio", "confronta_sha256", "confronta_sync_error"):
            self.assertNotIn(campo, form.fields)
        self.assertIn("confronta", form.fields)  # a new file is Django's to save
        html = r.content.decode()
        self.assertIn(f'href="/telefonica/venta/{self.minio.pk}/descargar-confronta/"', html)

    def test_un_post_no_cambia_las_columnas_del_sidecar(self):
        url = f"/admin/telefonica/ventaportabilidad/{self.rechazada.pk}/change/"
        r = self.client.post(url, {
            "numero": "PORTA-1", "cliente": "Nuevo", "agente": self.jefe.pk,
            "estado_venta": "registrada", "confronta_sync_error": "", "confronta_subido_a_minio": "on",
            "confronta_minio_object_name": "confrontas/otro.pdf",
        })
        self.assertEqual(r.status_code, 302, r.content.decode()[:2000])
        f = VentaPortabilidad.objects.filter(pk=self.rechazada.pk).values().get()
        self.assertEqual(f["cliente"], "Nuevo")
        self.assertEqual(f["confronta_sync_error"],
                         "type_not_allowed: extension .exe is not in allowed_types")
        self.assertFalse(f["confronta_subido_a_minio"])
        self.assertIsNone(f["confronta_minio_object_name"])

    def test_estado_y_filtro(self):
        r = self.client.get("/admin/telefonica/ventaportabilidad/")
        html = re.sub(r"\s+", " ", r.content.decode())
        self.assertIn("Rechazada: Ese tipo de archivo no se admite.", html)
        self.assertNotIn("allowed_types", html)
        self.assertIn("En MinIO", html)
        self.assertIn("Local, pendiente de subir", html)
        for estado, venta in (("rechazada", self.rechazada), ("minio", self.minio),
                              ("local", self.local)):
            with self.subTest(estado=estado):
                r = self.client.get(f"/admin/telefonica/ventaportabilidad/?estado_confronta={estado}")
                self.assertEqual([v.pk for v in r.context["cl"].result_list], [venta.pk])

    def test_el_mixin_no_duplica_lo_que_el_admin_ya_lista(self):
        admin = site._registry[VentaPortabilidad]
        peticion = RequestFactory().get("/")
        peticion.user = self.jefe
        self.assertEqual(admin.get_list_display(peticion).count("estado_confronta_admin"), 1)
        self.assertIn("confronta_sync_error", admin.get_readonly_fields(peticion))

    def test_el_detalle_del_sidecar_solo_para_superusuarios(self):
        # The sidecar's own words (a limit, a virus name) are for support; staff who are not
        # superusers read the Spanish reason.
        url = f"/admin/telefonica/ventaportabilidad/{self.rechazada.pk}/change/"
        html = re.sub(r"\s+", " ", self.client.get(url).content.decode())
        self.assertIn("type_not_allowed: extension .exe is not in allowed_types", html)
        personal = usuario("personal")
        personal.is_staff = True
        personal.save()
        personal.user_permissions.add(*Permission.objects.filter(
            codename__in=["view_ventaportabilidad", "change_ventaportabilidad"]))
        self.client.force_login(personal)
        html = re.sub(r"\s+", " ", self.client.get(url).content.decode())
        self.assertIn("Ese tipo de archivo no se admite.", html)
        self.assertNotIn("allowed_types", html)
