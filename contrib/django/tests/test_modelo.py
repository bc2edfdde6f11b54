"""The mixin's save semantics: what a save() writes to the sidecar's columns, and what it leaves
alone, observed in the rows (and in the UPDATE's column list Django reports to receivers)."""

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import FileField
from django.db.models.signals import pre_save
from django.test import TestCase
from django.utils import timezone

from confronta_sync_django.models import (
    ESTADO_LOCAL,
    ESTADO_MINIO,
    ESTADO_RECHAZADA,
    ESTADO_SIN,
    filtro_estado,
    ruta_confronta,
)
from tests.telefonica.forms import VentaTodoForm
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
        self.assertEqual(set(campos[0]),
                         {"confronta", "confronta_subido_a_minio", "confronta_asignada_en"})
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

    def test_un_guardado_revertido_no_cuenta_como_escrito(self):
        # Regression (issue 26): the loaded values were updated by a save inside a savepoint
        # that then rolled back, so the retry took the correction for "unchanged" and left it
        # out of its UPDATE: the correction was silently dropped.
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente, "original.pdf").pk)
        original = venta.confronta.name

        class Revertir(Exception):
            pass

        with self.assertRaises(Revertir):
            with transaction.atomic():
                venta.confronta = ContentFile(b"%PDF corregida", name="corregida.pdf")
                venta.save()
                raise Revertir
        self.assertEqual(fila(venta)["confronta"], original)
        venta.save()  # the view's retry
        f = fila(venta)
        self.assertTrue(f["confronta"].startswith("confrontas/corregida"), f["confronta"])
        self.assertEqual(f["confronta"], venta.confronta.name)
        self.assertFalse(f["confronta_subido_a_minio"])

    def test_un_archivo_nuevo_con_el_nombre_del_cargado_es_nuevo(self):
        # Regression (issue 26): a venta loaded while its file was local; the sidecar moves the
        # file (its name is free again); a new file saved under the same name was taken for
        # the loaded one and left out of the UPDATE.
        venta = venta_local(self.agente, "escaneo.pdf")
        cargada = VentaPortabilidad.objects.get(pk=venta.pk)
        mover_a_minio(venta)
        venta.confronta.storage.delete(venta.confronta.name)  # what the sidecar does after
        cargada.confronta.save("escaneo.pdf", ContentFile(b"%PDF nueva"), save=False)
        self.assertEqual(cargada.confronta.name, venta.confronta.name)  # Django reused it
        cargada.save()
        f = fila(venta)
        self.assertEqual(f["confronta"], venta.confronta.name)
        self.assertFalse(f["confronta_subido_a_minio"])
        self.assertEqual(f["confronta_minio_object_name"], OBJETO)  # for the sidecar to replace

    def test_marcar_para_resubir_no_deshace_un_registro(self):
        # Regression (issue 26): the reset was unconditional; landing right after a record it
        # left a valid object flagged "not in MinIO" for good.
        cargada = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        mover_a_minio(cargada)
        self.assertFalse(cargada.marcar_confronta_para_resubir())
        self.assertTrue(fila(cargada)["confronta_subido_a_minio"])

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


class AsignadaEn(TestCase):
    """`confronta_asignada_en` (contract A of issue 23): set with every new file, in the same
    UPDATE; never otherwise."""

    @classmethod
    def setUpTestData(cls):
        cls.agente = usuario("agente1")

    def asignada(self, venta):
        return fila(venta)["confronta_asignada_en"]

    def test_un_alta_con_archivo_la_fija_y_sin_archivo_no(self):
        antes = timezone.now()
        venta = venta_local(self.agente)
        self.assertGreaterEqual(self.asignada(venta), antes)
        sin = VentaPortabilidad.objects.create(cliente="Sin", agente=self.agente)
        self.assertIsNone(self.asignada(sin))

    def test_cada_archivo_nuevo_la_cambia_y_nada_mas(self):
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        primera = self.asignada(venta)
        venta.cliente = "Otro"
        venta.save()
        self.assertEqual(self.asignada(venta), primera)  # other columns: not evidence
        mover_a_minio(venta)
        self.assertEqual(self.asignada(venta), primera)  # the record does not touch it
        venta = VentaPortabilidad.objects.get(pk=venta.pk)
        venta.confronta = ContentFile(b"%PDF correccion", name="correccion.pdf")
        venta.save()
        segunda = self.asignada(venta)
        self.assertGreater(segunda, primera)
        self.assertEqual(venta.confronta_asignada_en, segunda)
        venta.confronta = "confrontas/puesta_a_mano.pdf"  # a path, as a script would
        venta.save()
        self.assertGreater(self.asignada(venta), segunda)

    def test_el_mismo_nombre_asignado_otra_vez_cuenta(self):
        # Restoring a file from a backup under the path the row names: assigning the path
        # again is the new assignment the sidecar needs as evidence.
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        primera = self.asignada(venta)
        venta.confronta = venta.confronta.name
        venta.save()
        self.assertGreater(self.asignada(venta), primera)

    def test_quitar_el_archivo_solo_escribe_la_ruta(self):
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        primera = self.asignada(venta)
        venta.confronta = None
        venta.save()
        f = fila(venta)
        self.assertEqual(f["confronta"], "")  # Django stores a cleared FileField as ''
        self.assertEqual(f["confronta_asignada_en"], primera)

    def test_un_formulario_sin_archivo_nuevo_no_asigna(self):
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        primera = self.asignada(venta)
        form = VentaTodoForm({"cliente": "Desde el formulario", "agente": self.agente.pk,
                              "numero": "PORTA-1", "estado_venta": "registrada"},
                             instance=venta)
        self.assertTrue(form.is_valid(), form.errors)
        form.save()
        f = fila(venta)
        self.assertEqual((f["cliente"], f["confronta_asignada_en"]),
                         ("Desde el formulario", primera))
        # The form's "clear" box is a clearing: the path goes, the time stays.
        form = VentaTodoForm({"cliente": "Sin archivo", "agente": self.agente.pk,
                              "numero": "PORTA-1", "estado_venta": "registrada",
                              "confronta-clear": "on"}, instance=venta)
        self.assertTrue(form.is_valid(), form.errors)
        form.save()
        f = fila(venta)
        self.assertEqual((f["confronta"], f["confronta_asignada_en"]), ("", primera))

    def test_una_instancia_que_ya_escribio_su_archivo_no_lo_vuelve_a_escribir(self):
        # One instance, saved with a new file, then again after the sidecar recorded that
        # file: the second save must not write the old path (or the flag) back.
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        venta.confronta = ContentFile(b"%PDF nueva", name="nueva.pdf")
        venta.save()
        registrada = mover_a_minio(VentaPortabilidad.objects.get(pk=venta.pk))
        venta.cliente = "Después del registro"
        venta.save()
        f = fila(venta)
        self.assertEqual(f["cliente"], "Después del registro")
        for columna in ("confronta", "confronta_subido_a_minio", "confronta_minio_object_name",
                        "confronta_asignada_en"):
            self.assertEqual(f[columna], getattr(registrada, columna), columna)

    def test_dos_guardados_en_una_transaccion_escriben_un_archivo(self):
        venta = VentaPortabilidad.objects.get(pk=venta_local(self.agente).pk)
        with transaction.atomic():
            venta.confronta = ContentFile(b"%PDF nueva", name="nueva.pdf")
            venta.save()
            escrita = self.asignada(venta)
            venta.estado_venta = "pendiente_revision"
            venta.save()
        self.assertEqual(self.asignada(venta), escrita)
        self.assertEqual(fila(venta)["estado_venta"], "pendiente_revision")


class RutaConfronta(TestCase):
    def test_fecha_parte_aleatoria_y_nombre(self):
        campo = FileField(upload_to=ruta_confronta)
        hoy = timezone.localtime()
        rutas = {campo.generate_filename(None, "IMG_0001.jpg") for _ in range(20)}
        self.assertEqual(len(rutas), 20)  # never the same name twice
        for ruta in rutas:
            self.assertRegex(ruta, rf"^confrontas/{hoy:%Y/%m}/[a-z0-9]{{12}}_IMG_0001\.jpg$")
        self.assertRegex(ruta_confronta(None, "C:\\escaneos\\firma.PDF"),
                         r"^confrontas/\d{4}/\d{2}/[a-z0-9]{12}_firma\.PDF$")
