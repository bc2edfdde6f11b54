"""The mixin's save semantics: what a save() writes to the sidecar's columns, and what it leaves
alone, observed in the rows (and in the UPDATE's column list Django reports to receivers)."""

from django.core.files.base import ContentFile
from django.db.models.signals import pre_save
from django.test import TestCase

from confronta_sync_django.models import (
    ESTADO_LOCAL,
    ESTADO_MINIO,
    ESTADO_RECHAZADA,
    ESTADO_SIN,
    filtro_estado,
)
from tests.telefonica.models import VentaPortabilidad

from .apoyo import OBJETO, mover_a_minio, rechazar, usuario, venta_local


def fila(venta):
    return VentaPortabilidad.objects.filter(pk=venta.pk).values().get()


class Guardar(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")

    def test_un_alta_se_guarda_como_siempre(self):
        venta = venta_local(self.agente, "alta.pdf")
        f = fila(venta)
        self.assertTrue(f["confronta"].startswith("confrontas/alta"))
        self.assertFalse(f["confronta_subido_a_minio"])
        self.assertIsNone(f["confronta_minio_object_name"])
        self.assertEqual(venta.estado_confronta, ESTADO_LOCAL)

    def test_una_instancia_vieja_no_deshace_lo_que_hizo_el_sidecar(self):
        vieja = venta_local(self.agente)
        vieja = VentaPortabilidad.objects.get(pk=vieja.pk)  # a form opened now...
        mover_a_minio(vieja)  # ...the sidecar records the object meanwhile...
        vieja.cliente = "Otro cliente"
        vieja.save()  # ...and the form is saved.
        f = fila(vieja)
        self.assertEqual(f["cliente"], "Otro cliente")
        self.assertEqual(f["confronta"], "")
        self.assertTrue(f["confronta_subido_a_minio"])
        self.assertEqual(f["confronta_minio_object_name"], OBJETO)

    def test_una_instancia_vieja_no_borra_el_motivo_de_rechazo(self):
        vieja = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        rechazar(vieja, "extension .exe is not in allowed_types")
        vieja.estado_venta = "revisada"
        vieja.save()
        f = fila(vieja)
        self.assertEqual(f["confronta"], "")
        self.assertEqual(f["confronta_sync_error"], "extension .exe is not in allowed_types")
        self.assertEqual(f["estado_venta"], "revisada")

    def test_una_correccion_marca_para_subir_y_conserva_el_objeto_anterior(self):
        venta = mover_a_minio(venta_local(self.agente))
        venta.confronta = ContentFile(b"%PDF corregida", name="corregida.pdf")
        venta.save()
        f = fila(venta)
        self.assertTrue(f["confronta"].startswith("confrontas/corregida"))
        self.assertFalse(f["confronta_subido_a_minio"])
        self.assertEqual(f["confronta_minio_object_name"], OBJETO)  # the sidecar replaces it
        self.assertEqual(VentaPortabilidad.objects.get(pk=venta.pk).estado_confronta, ESTADO_LOCAL)

    def test_una_ruta_asignada_tambien_es_un_archivo_nuevo(self):
        venta = mover_a_minio(venta_local(self.agente))
        venta.confronta = "confrontas/puesta_a_mano.pdf"
        venta.save()
        f = fila(venta)
        self.assertEqual(f["confronta"], "confrontas/puesta_a_mano.pdf")
        self.assertFalse(f["confronta_subido_a_minio"])

    def test_update_fields_con_confronta_anade_la_marca(self):
        venta = mover_a_minio(venta_local(self.agente))
        venta.confronta = ContentFile(b"%PDF otra", name="otra.pdf")
        campos = []
        receptor = lambda sender, update_fields, **kw: campos.append(update_fields)  # noqa: E731
        pre_save.connect(receptor, sender=VentaPortabilidad)
        try:
            venta.save(update_fields=["confronta"])
        finally:
            pre_save.disconnect(receptor, sender=VentaPortabilidad)
        self.assertEqual(set(campos[0]), {"confronta", "confronta_subido_a_minio"})
        self.assertFalse(fila(venta)["confronta_subido_a_minio"])

    def test_los_receptores_ven_update_fields_sin_las_columnas_intactas(self):
        # The one visible consequence the README names: a save of a loaded instance reaches
        # pre_save/post_save with update_fields set, the untouched sidecar columns left out.
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        campos = []
        receptor = lambda sender, update_fields, **kw: campos.append(update_fields)  # noqa: E731
        pre_save.connect(receptor, sender=VentaPortabilidad)
        try:
            venta.cliente = "X"
            venta.save()
        finally:
            pre_save.disconnect(receptor, sender=VentaPortabilidad)
        self.assertIn("cliente", campos[0])
        for columna in ("confronta", "confronta_minio_object_name", "confronta_sync_error"):
            self.assertNotIn(columna, campos[0])

    def test_marcar_para_resubir_solo_toca_la_marca(self):
        venta = venta_local(self.agente)
        VentaPortabilidad.objects.filter(pk=venta.pk).update(confronta_subido_a_minio=True,
                                                             cliente="Cambiado fuera")
        self.assertTrue(venta.marcar_confronta_para_resubir())
        f = fila(venta)
        self.assertFalse(f["confronta_subido_a_minio"])
        self.assertEqual(f["cliente"], "Cambiado fuera")
        self.assertFalse(rechazar(venta).marcar_confronta_para_resubir())


class Estados(TestCase):
    def test_cada_estado_y_su_filtro(self):
        agente = usuario("agente1")
        ventas = {
            ESTADO_LOCAL: venta_local(agente, "l.pdf"),
            ESTADO_MINIO: mover_a_minio(venta_local(agente, "m.pdf")),
            ESTADO_RECHAZADA: rechazar(venta_local(agente, "r.pdf")),
        }
        sin = venta_local(agente, "s.pdf")
        VentaPortabilidad.objects.filter(pk=sin.pk).update(confronta=None)
        ventas[ESTADO_SIN] = VentaPortabilidad.objects.get(pk=sin.pk)
        for estado, venta in ventas.items():
            with self.subTest(estado=estado):
                self.assertEqual(venta.estado_confronta, estado)
                self.assertEqual(
                    list(VentaPortabilidad.objects.filter(filtro_estado(estado)).values_list(
                        "pk", flat=True)), [venta.pk])
        self.assertTrue(ventas[ESTADO_RECHAZADA].confronta_rechazada)
        self.assertFalse(ventas[ESTADO_MINIO].confronta_rechazada)
