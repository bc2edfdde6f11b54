"""URL wiring (issue 26, item 1): the companion's URLs included from the root URLconf under the
names the settings give, the detail page reversed with the CRM's own keyword, system checks
that reverse every configured name and require MessageMiddleware, and answers that go through
Django's own 403 and 404 handlers, with the permission decided before the venta's existence is
revealed."""

import itertools
from types import ModuleType
from unittest import mock

from django.core import checks
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.test import TestCase, override_settings
from django.urls import include, path, reverse

from confronta_sync_django import minio_utils, views

from .apoyo import mover_a_minio, rechazar, usuario, venta_local


def ficha(request, venta_id):
    return HttpResponse(f"ficha de la venta {venta_id}")


def prohibido(request, exception=None):
    return HttpResponse("Página 403 del CRM", status=403)


def no_encontrado(request, exception=None):
    return HttpResponse("Página 404 del CRM", status=404)


def raiz(*companion):
    """A root URLconf: the CRM's app (namespace `crm`, its detail page `ficha` taking
    `venta_id`), the companion's URLs as given, and the CRM's own 403 and 404 pages."""
    modulo = ModuleType(f"tests.raiz_{next(_numeros)}")  # a new resolver for each
    modulo.urlpatterns = [
        path("crm/", include(([path("ficha/<int:venta_id>/", ficha, name="ficha")], "crm"))),
        *companion,
    ]
    modulo.handler403, modulo.handler404 = prohibido, no_encontrado
    return modulo


_numeros = itertools.count()


PROPIOS = dict(
    CONFRONTA_SYNC_DESCARGA_URL="confrontas:descargar",
    CONFRONTA_SYNC_RESUBIR_URL="confrontas:resubir",
    CONFRONTA_SYNC_DETALLE_URL="crm:ficha",
    CONFRONTA_SYNC_DETALLE_KWARG="venta_id",
)


def ids(mensajes):
    return sorted(m.id for m in mensajes if m.id and m.id.startswith("confronta_sync."))


@override_settings(**PROPIOS)
class IncluidasDesdeLaRaiz(TestCase):
    """`include("confronta_sync_django.urls")` from the root URLconf, with names of the CRM's
    choosing: the namespace and names come from the settings."""

    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")
        cls.backoffice = usuario("bo", grupos=["backoffice"])

    def setUp(self):
        urls = override_settings(ROOT_URLCONF=raiz(
            path("confrontas/", include("confronta_sync_django.urls"))))
        urls.enable()
        self.addCleanup(urls.disable)
        self.client.force_login(self.agente)

    def test_los_nombres_configurados_resuelven(self):
        venta = venta_local(self.agente)
        self.assertEqual(reverse("confrontas:descargar", args=[venta.pk]),
                         f"/confrontas/venta/{venta.pk}/descargar-confronta/")
        self.assertEqual(reverse("confrontas:resubir", args=[venta.pk]),
                         f"/confrontas/venta/{venta.pk}/resubir-confronta-minio/")
        self.assertEqual(ids(checks.run_checks()), [])

    def test_vuelve_al_detalle_del_crm_con_su_argumento(self):
        venta = rechazar(venta_local(self.agente))
        r = self.client.get(f"/confrontas/venta/{venta.pk}/descargar-confronta/")
        self.assertEqual(r.status_code, 302)
        self.assertEqual(r["Location"], f"/crm/ficha/{venta.pk}/")

    def test_el_fragmento_enlaza_la_descarga(self):
        venta = mover_a_minio(venta_local(self.agente))
        html = render_to_string("confronta_sync/confronta_detalle.html", {"venta": venta})
        self.assertIn(f'href="/confrontas/venta/{venta.pk}/descargar-confronta/"', html)

    def test_403_y_404_son_las_paginas_del_crm(self):
        venta = mover_a_minio(venta_local(self.agente))
        otro = usuario("agente2")
        self.client.force_login(otro)
        r = self.client.get(f"/confrontas/venta/{venta.pk}/descargar-confronta/")
        self.assertEqual((r.status_code, r.content.decode()), (403, "Página 403 del CRM"))
        # An id that names no venta: the agent may not learn that, so the answer is the same.
        r = self.client.get("/confrontas/venta/987654/descargar-confronta/")
        self.assertEqual((r.status_code, r.content.decode()), (403, "Página 403 del CRM"))
        r = self.client.post("/confrontas/venta/987654/resubir-confronta-minio/")
        self.assertEqual((r.status_code, r.content.decode()), (403, "Página 403 del CRM"))
        # Backoffice may see any venta: for them a missing one is a 404.
        self.client.force_login(self.backoffice)
        r = self.client.get("/confrontas/venta/987654/descargar-confronta/")
        self.assertEqual((r.status_code, r.content.decode()), (404, "Página 404 del CRM"))
        r = self.client.post("/confrontas/venta/987654/resubir-confronta-minio/")
        self.assertEqual((r.status_code, r.content.decode()), (404, "Página 404 del CRM"))
        with mock.patch.object(minio_utils, "objeto_existe", return_value=True):
            r = self.client.get(f"/confrontas/venta/{venta.pk}/descargar-confronta/")
        self.assertEqual(r.status_code, 302)


class ChecksDeUrls(TestCase):
    def test_la_configuracion_por_defecto_resuelve(self):
        self.assertEqual(ids(checks.run_checks()), [])

    def test_un_nombre_que_no_resuelve(self):
        casos = {
            "CONFRONTA_SYNC_DETALLE_URL": "telefonica:no_existe",
            "CONFRONTA_SYNC_DESCARGA_URL": "telefonica:no_existe",
            "CONFRONTA_SYNC_RESUBIR_URL": "otra:resubir_confronta_minio",
            "CONFRONTA_SYNC_DETALLE_KWARG": "venta_id",  # the test app's detail takes pk
        }
        for ajuste, valor in casos.items():
            with self.subTest(ajuste=ajuste), override_settings(**{ajuste: valor}):
                mensajes = [m for m in checks.run_checks() if m.id == "confronta_sync.W005"]
                self.assertEqual(len(mensajes), 1, [str(m) for m in mensajes])
                self.assertIn(ajuste, mensajes[0].msg)
                # A warning, so that `migrate` runs before the URLs are wired; an error where
                # a deployment is checked.
                self.assertIn("confronta_sync.E005",
                              ids(checks.run_checks(include_deployment_checks=True)))

    def test_un_nombre_que_sirve_otra_vista(self):
        # The seed plan's own download view, still in the CRM's urls.py under the same name.
        telefonica = [
            path("venta/<int:pk>/", ficha, name="detalle_venta_portabilidad"),
            path("venta/<int:venta_id>/bajar/", ficha, name="descargar_confronta"),
            path("venta/<int:venta_id>/resubir/", views.resubir_confronta_minio,
                 name="resubir_confronta_minio"),
        ]
        with override_settings(ROOT_URLCONF=raiz(
                path("telefonica/", include((telefonica, "telefonica"))))):
            self.assertIn("confronta_sync.W006", ids(checks.run_checks()))

    def test_dos_includes_con_el_mismo_espacio(self):
        # The CRM's own `telefonica` app and the companion's module included under the same
        # namespace: only the first is reversible, so the companion's names are reported.
        crm = [path("venta/<int:pk>/", ficha, name="detalle_venta_portabilidad")]
        with override_settings(ROOT_URLCONF=raiz(
                path("telefonica/", include((crm, "telefonica"))),
                path("confrontas/", include("confronta_sync_django.urls")))):
            avisos = [m for m in checks.run_checks() if m.id == "confronta_sync.W005"]
        self.assertEqual(sorted(m.msg.split(" ", 1)[0] for m in avisos),
                         ["CONFRONTA_SYNC_DESCARGA_URL", "CONFRONTA_SYNC_RESUBIR_URL"])

    @override_settings(MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ])
    def test_sin_message_middleware(self):
        self.assertIn("confronta_sync.W007", ids(checks.run_checks()))
        self.assertIn("confronta_sync.E007", ids(checks.run_checks(include_deployment_checks=True)))
        # And the view does not answer 500 meanwhile: it goes back without its message.
        agente = usuario("agente1")
        venta = rechazar(venta_local(agente))
        self.client.force_login(agente)
        r = self.client.get(f"/telefonica/venta/{venta.pk}/descargar-confronta/")
        self.assertEqual(r.status_code, 302)
        self.assertEqual(r["Location"], f"/telefonica/venta/{venta.pk}/")
