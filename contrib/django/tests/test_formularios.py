"""Forms that carry every editable field of the venta, opened while its file was still local and
posted after the sidecar recorded (or refused) it: a plain ModelAdmin (the companion's admin
mixin is optional) and a ModelForm with `fields = "__all__"`. The post must keep what the
sidecar wrote (issue 26, item 0: the form posted the blanks it showed, the row lost its object,
and `orphans --delete-objects` would later delete the only copy)."""

from django import forms
from django.core.files.base import ContentFile
from django.test import TestCase

from tests.telefonica.forms import VentaTodoForm
from tests.telefonica.models import VentaPortabilidad

from .apoyo import mover_a_minio, rechazar, usuario, venta_local

OBJETO_NUEVO = "confrontas/venta_PORTA-1_confronta_1_fedcba987654.pdf"

#: The columns the sidecar writes, and the one Django sets with a new file.
COLUMNAS = (
    "confronta",
    "confronta_minio_url",
    "confronta_minio_object_name",
    "confronta_subido_a_minio",
    "confronta_sha256",
    "confronta_sync_error",
)


def columnas(pk):
    return VentaPortabilidad.objects.filter(pk=pk).values(*COLUMNAS).get()


def como_navegador(form):
    """What a browser posts for `form` as it was rendered: each field's shown value; an
    unchecked box and an untouched file input send nothing."""
    datos = {}
    for nombre, campo in form.fields.items():
        valor = form[nombre].value()
        if isinstance(campo, forms.FileField):
            continue
        if isinstance(campo, forms.BooleanField):
            if valor:
                datos[nombre] = "on"
            continue
        datos[nombre] = "" if valor is None else str(valor)
    return datos


# --- what the sidecar does between the form's GET and its POST ------------------------------

def registro(agente):
    """A new local file, recorded while the form is open."""
    venta = venta_local(agente)
    return venta, lambda: mover_a_minio(venta)


def rechazo(agente):
    """A new local file, refused (quarantined) while the form is open."""
    venta = venta_local(agente)
    return venta, lambda: rechazar(venta, "content_not_allowed: content is application/"
                                          "x-msdownload (exe), which is not in allowed_types")


def correccion(agente):
    """A correction waiting while the venta's first file is in MinIO: the sidecar records the
    new object and retires the old one while the form is open."""
    venta = mover_a_minio(venta_local(agente, "primera.pdf"))
    venta.confronta = ContentFile(b"%PDF corregida", name="corregida.pdf")
    venta.save()
    return venta, lambda: mover_a_minio(VentaPortabilidad.objects.get(pk=venta.pk), OBJETO_NUEVO)


CASOS = {"registro": registro, "rechazo": rechazo, "correccion": correccion}


class FormularioAbiertoAntesDelSidecar(TestCase):
    maxDiff = None

    @classmethod
    def setUpTestData(cls):
        cls.jefe = usuario("jefe", superuser=True)

    def check(self, enviar):
        """For each case: open the form, let the sidecar act, post what the form showed with
        the client changed; the sidecar's columns are as the sidecar left them."""
        for nombre, preparar in CASOS.items():
            with self.subTest(caso=nombre):
                venta, sidecar = preparar(self.jefe)
                enviar_despues = enviar(venta.pk)
                sidecar()
                esperado = columnas(venta.pk)
                enviar_despues()
                self.assertEqual(
                    VentaPortabilidad.objects.get(pk=venta.pk).cliente, "Cambiado en el formulario")
                self.assertEqual(columnas(venta.pk), esperado)

    def test_un_modeladmin_simple(self):
        self.client.force_login(self.jefe)

        def abrir(pk):
            url = f"/admin-simple/telefonica/ventaportabilidad/{pk}/change/"
            r = self.client.get(url)
            self.assertEqual(r.status_code, 200)
            datos = dict(como_navegador(r.context["adminform"].form),
                         cliente="Cambiado en el formulario", _save="Guardar")

            def enviar():
                r = self.client.post(url, datos)
                self.assertEqual(r.status_code, 302, r.content.decode()[:3000])

            return enviar

        self.check(abrir)

    def test_un_modelform_con_todos_los_campos(self):
        def abrir(pk):
            form = VentaTodoForm(instance=VentaPortabilidad.objects.get(pk=pk))
            datos = dict(como_navegador(form), cliente="Cambiado en el formulario")

            def enviar():
                # The POST's view loads the venta again, as views do, after the sidecar acted.
                form = VentaTodoForm(datos, instance=VentaPortabilidad.objects.get(pk=pk))
                self.assertTrue(form.is_valid(), form.errors)
                form.save()

            return enviar

        self.check(abrir)

    def test_los_campos_del_sidecar_no_estan_en_ningun_formulario(self):
        form = VentaTodoForm()
        for campo in COLUMNAS[1:] + ("confronta_asignada_en",):
            self.assertNotIn(campo, form.fields)
        self.assertIn("confronta", form.fields)  # a new file is Django's to save
