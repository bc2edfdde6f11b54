"""The MinIO fields of VentaPortabilidad and the methods that read them.

Inherit the mixin *before* models.Model:

    class VentaPortabilidad(ConfrontaMinioMixin, models.Model):
        confronta = models.FileField(upload_to=ruta_confronta, null=True, blank=True)
        ...

`python manage.py makemigrations telefonica` writes the migration that adds its six fields.

Who writes what: Django writes `confronta` (a new file), and with it `confronta_subido_a_minio =
False` ("the file in `confronta` still has to go to MinIO") and `confronta_asignada_en` (when
that file was assigned). The confronta-sync sidecar writes `confronta_minio_url`,
`confronta_minio_object_name`, `confronta_sha256`, sets `confronta_subido_a_minio` to True and
`confronta` to '' once the local file is gone; for a file it refuses, it sets `confronta` to ''
and writes the reason to `confronta_sync_error`. None of the six is editable in a form, and a
save() of a stored venta writes them only with a new file. Nothing here uploads.
"""

import functools
import logging
import posixpath
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models, router
from django.db.models import Q
from django.db.models.signals import class_prepared
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.translation import gettext_lazy as _

from . import motivos
from .migraciones import indices_confronta
from .validacion import ValidadorConfronta

logger = logging.getLogger("confronta_sync_django")

#: The venta's file field, which the CRM's model declares (the seed plan's `confronta`).
CAMPO_ARCHIVO = "confronta"
#: When the file now in `confronta` was assigned (contract A of issue 23): Django sets it with
#: every new file, never otherwise; the sidecar reads it as evidence that a row owns a file
#: that appeared at its path after the row was seen naming a missing one.
CAMPO_ASIGNADA = "confronta_asignada_en"

#: Columns the sidecar writes (with `confronta`, which Django writes too).
CAMPOS_SIDECAR = (
    CAMPO_ARCHIVO,
    "confronta_minio_url",
    "confronta_minio_object_name",
    "confronta_subido_a_minio",
    "confronta_sha256",
    "confronta_sync_error",
)
#: The mixin's fields: the sidecar's columns and the assignment time. None is editable.
CAMPOS_MIXIN = CAMPOS_SIDECAR[1:] + (CAMPO_ASIGNADA,)
#: Written by the sidecar alone: a save() of a stored venta never writes them, whatever the
#: instance holds (an instance loaded before the sidecar's record holds stale values).
CAMPOS_SOLO_SIDECAR = (
    "confronta_minio_url",
    "confronta_minio_object_name",
    "confronta_sha256",
    "confronta_sync_error",
)
#: Written by a save() of a stored venta only when it assigns a new file to `confronta`.
CAMPOS_CON_ARCHIVO_NUEVO = (CAMPO_ARCHIVO, "confronta_subido_a_minio", CAMPO_ASIGNADA)


def ruta_confronta(instance, filename: str) -> str:
    """`upload_to` for the venta's FileField: `confrontas/%Y/%m/<random>_<name>`.

    The random part means a name is never handed to a second sale: without it, Django reuses
    `confrontas/IMG_0001.jpg` as soon as the sidecar has moved the first one, and the sidecar
    has to tell from the rows' history which sale a file at that path belongs to (it does, and
    stays correct without this helper). Recommended for new installs:

        confronta = models.FileField(upload_to=ruta_confronta, null=True, blank=True)

    The sidecar watches `confrontas/` recursively, so the dated folders need no configuration.
    """
    ahora = timezone.localtime() if timezone.is_aware(timezone.now()) else timezone.now()
    aleatorio = get_random_string(12, "abcdefghijklmnopqrstuvwxyz0123456789")
    nombre = posixpath.basename(filename.replace("\\", "/")) or "confronta"
    return f"confrontas/{ahora:%Y/%m}/{aleatorio}_{nombre}"


#: The states of a venta's confronta (`estado_confronta`).
ESTADO_MINIO = "minio"
ESTADO_LOCAL = "local"
ESTADO_RECHAZADA = "rechazada"
ESTADO_SIN = "sin"
ESTADOS_CONFRONTA = (
    (ESTADO_MINIO, _("En MinIO")),
    (ESTADO_LOCAL, _("Local, pendiente de subir")),
    (ESTADO_RECHAZADA, _("Rechazada")),
    (ESTADO_SIN, _("Sin confronta")),
)


def filtro_estado(estado: str) -> Q:
    """The rows whose `estado_confronta` is `estado`, as a filter (the admin's list filter)."""
    sin_archivo = Q(confronta__isnull=True) | Q(confronta="")
    con_motivo = Q(confronta_sync_error__isnull=False) & ~Q(confronta_sync_error="")
    en_minio = (
        Q(confronta_subido_a_minio=True)
        & Q(confronta_minio_object_name__isnull=False)
        & ~Q(confronta_minio_object_name="")
    )
    if estado == ESTADO_RECHAZADA:
        return sin_archivo & con_motivo
    if estado == ESTADO_LOCAL:
        return ~sin_archivo
    if estado == ESTADO_MINIO:
        return sin_archivo & ~con_motivo & en_minio
    if estado == ESTADO_SIN:
        return sin_archivo & ~con_motivo & ~en_minio
    raise ValueError(f"unknown estado {estado!r}")


def _nombre(valor) -> str:
    """A FieldFile's name, or a path as assigned; '' for "no file"."""
    nombre = getattr(valor, "name", valor)
    return nombre if isinstance(nombre, str) else ""


class ConfrontaMinioMixin(models.Model):
    confronta_minio_url = models.URLField(
        verbose_name=_("URL MinIO Confronta"), null=True, blank=True, editable=False
    )
    confronta_minio_object_name = models.CharField(
        max_length=500,
        verbose_name=_("Nombre Objeto MinIO Confronta"),
        null=True,
        blank=True,
        editable=False,
    )
    confronta_subido_a_minio = models.BooleanField(
        default=False, verbose_name=_("Confronta Subido a MinIO"), editable=False
    )
    confronta_sha256 = models.CharField(
        max_length=64, verbose_name=_("SHA-256 Confronta"), null=True, blank=True, editable=False
    )
    # Written by the sidecar when it refuses the file (type, size, virus), together with
    # `confronta = ''`: `<code>: <detail>` (see motivos.py), the sign that a new upload is needed.
    confronta_sync_error = models.TextField(
        verbose_name=_("Motivo de rechazo de la confronta"), null=True, blank=True, editable=False
    )
    confronta_asignada_en = models.DateTimeField(
        verbose_name=_("Confronta asignada en"), null=True, blank=True, editable=False
    )

    class Meta:
        abstract = True
        # The three indexes the sidecar's queries need (see migraciones.py). A CRM model with a
        # Meta of its own inherits them with `class Meta(ConfrontaMinioMixin.Meta)`.
        indexes = indices_confronta()

    # --- reading -------------------------------------------------------------------------

    @property
    def confronta_en_minio(self) -> bool:
        """The sidecar recorded an object for this venta."""
        return bool(self.confronta_subido_a_minio and self.confronta_minio_object_name)

    @property
    def confronta_rechazada(self) -> bool:
        """The sidecar refused the last file (`confronta_sync_error` says why) and no new one
        has been saved since: the venta needs a new upload. A new file saved by Django takes
        over at once (the sidecar clears the reason when it records that file)."""
        return bool(self.confronta_sync_error) and not self._archivo_guardado()

    @property
    def codigo_rechazo_confronta(self):
        """The code of the sidecar's refusal (`too_large`, `type_not_allowed`, ..., see
        motivos.py), or None: no refusal, or an older sidecar's text without a code."""
        return motivos.separar(self.confronta_sync_error)[0] if self.confronta_rechazada else None

    @property
    def motivo_rechazo_confronta(self) -> str:
        """Why the sidecar refused the file, in Spanish and without its internals (limits,
        virus names), for agents; '' when it was not refused. The detail stays in
        `confronta_sync_error`, for support."""
        if not self.confronta_rechazada:
            return ""
        return str(motivos.mensaje_de_rechazo(self.confronta_sync_error))

    @property
    def estado_confronta(self) -> str:
        """Where the confronta stands: ESTADO_MINIO, ESTADO_LOCAL, ESTADO_RECHAZADA or
        ESTADO_SIN (for the admin's column and filter, and for templates)."""
        if self.confronta_rechazada:
            return ESTADO_RECHAZADA
        if self._archivo_guardado():
            # A new local file is what counts, even while an older one is still in MinIO.
            return ESTADO_LOCAL
        if self.confronta_en_minio:
            return ESTADO_MINIO
        return ESTADO_SIN

    @property
    def confronta_pendiente_de_subir(self) -> bool:
        """A local file is waiting for the sidecar (new, or a correction)."""
        return bool(self._archivo_guardado()) and not self.confronta_subido_a_minio

    def _archivo_guardado(self) -> str:
        """The path of the file this venta has stored: an upload the instance holds but has
        not stored (a form that failed validation leaves it on its instance) does not count,
        so the pages show the row as it is, not a file that was refused before it was saved."""
        archivo = self.__dict__.get(CAMPO_ARCHIVO)
        if getattr(archivo, "_committed", True) is False:
            return self.__dict__.get("_confronta_leida", "")
        return _nombre(archivo)

    def obtener_url_descarga_confronta(self, expiry_days=7):
        """A presigned GET URL for the confronta, valid `expiry_days` days (at most 7, the S3
        limit), or None when it is not in MinIO or the URL cannot be made."""
        if not self.confronta_en_minio:
            return None
        from .minio_utils import url_descarga

        try:
            return url_descarga(
                self.confronta_minio_object_name, expires=timedelta(days=expiry_days)
            )
        except Exception:
            logger.exception(
                "cannot presign confronta of venta %s (object %s)",
                self.pk,
                self.confronta_minio_object_name,
            )
            return None

    # --- writing -------------------------------------------------------------------------

    def marcar_confronta_para_resubir(self) -> bool:
        """Mark the local confronta for (re-)upload: resets `confronta_subido_a_minio` in one
        UPDATE that touches nothing else, and only while the row still names the file this
        instance names. A row the sidecar recorded (or refused, or a correction replaced) since
        this instance was read is left alone: the reset would flag a valid object "not in
        MinIO" for good. Returns whether the row was marked.

        The sidecar picks up every row that still points at a local file, so this changes
        what the pages show, not whether it is uploaded."""
        nombre = _nombre(self.__dict__.get(CAMPO_ARCHIVO))
        if not nombre:
            return False
        marcadas = (
            type(self)._base_manager.using(self._state.db or router.db_for_write(type(self)))
            .filter(pk=self.pk, **{CAMPO_ARCHIVO: nombre})
            .update(confronta_subido_a_minio=False)
        )
        if marcadas:
            self.confronta_subido_a_minio = False
        return bool(marcadas)

    def clean_fields(self, exclude=None):
        """Django's field validation, and a new upload checked against the sidecar's rules
        (validacion.py): every ModelForm and the admin refuse, in Spanish, what the sidecar
        would refuse later. A file already stored is not checked again (its fate is the
        sidecar's)."""
        errores = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as e:
            errores = e.update_error_dict(errores)
        archivo = self.__dict__.get(CAMPO_ARCHIVO)
        if ((exclude is None or CAMPO_ARCHIVO not in exclude) and CAMPO_ARCHIVO not in errores
                and getattr(archivo, "_committed", True) is False and archivo):
            try:
                ValidadorConfronta()(archivo)
            except ValidationError as e:
                errores[CAMPO_ARCHIVO] = e.error_list
        if errores:
            raise ValidationError(errores)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # What __init__ put in `confronta` came from the row, not from the code.
        instance._olvidar_asignacion()
        return instance

    def refresh_from_db(self, using=None, fields=None, **kwargs):
        super().refresh_from_db(using=using, fields=fields, **kwargs)
        if fields is None or CAMPO_ARCHIVO in fields:
            self._olvidar_asignacion()

    def save(self, *args, **kwargs):
        """Saves as usual, except for the mixin's columns once the venta is in the database:

        - they are written only with a new file, which this code assigned to `confronta`
          since the venta was loaded (an upload, a `FieldFile.save()`, a path; under the name
          of the loaded file too): then `confronta`, `confronta_subido_a_minio = False` and
          `confronta_asignada_en = now()`. `confronta_minio_object_name` is kept: the
          sidecar needs it to replace the old object. A cleared `confronta` writes only
          `confronta`;
        - otherwise none of them is in the UPDATE, so an instance loaded before the sidecar's
          record or refusal (a form opened a few seconds, or hours, earlier) never writes back
          an old path, blanks an object or erases a refusal.

        Whether an earlier save's new file reached the row is read from the row at this save
        (its `confronta_asignada_en`), not assumed: a save inside a savepoint that rolled back
        is written again. Inserts write what they are told (with `confronta_asignada_en` set
        when there is a file); `update_fields` writes what it names (plus the flag and the
        time when it names `confronta` with a new file). Nothing uploads.
        """
        # Positional arguments are save()'s own, in order; named, they are easier to read.
        kwargs.update(zip(("force_insert", "force_update", "using", "update_fields"), args))
        if self._state.adding or kwargs.get("force_insert"):
            if _nombre(self.__dict__.get(CAMPO_ARCHIVO)) and self.confronta_asignada_en is None:
                self.confronta_asignada_en = timezone.now()
            result = super().save(**kwargs)
            self._olvidar_asignacion()
            return result

        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            update_fields = list(update_fields)
        escribe_archivo = update_fields is None or CAMPO_ARCHIVO in update_fields
        asignada = self._hay_asignacion() and escribe_archivo
        pendiente = self.__dict__.get("_confronta_escrito") if escribe_archivo else None
        fila = None
        if asignada or pendiente is not None:
            fila = (
                type(self)._base_manager.using(using).filter(pk=self.pk)
                .values_list(CAMPO_ARCHIVO, CAMPO_ASIGNADA).first()
            )
        if pendiente is not None and fila is not None:
            self.__dict__["_confronta_escrito"] = None
            columna, antes, escrito = pendiente
            actual = fila[0] if columna == CAMPO_ARCHIVO else fila[1]
            if actual != escrito and actual == antes:
                # The earlier save's file never reached the row (its savepoint or transaction
                # rolled back): this save writes it.
                asignada = True
            elif actual != escrito:
                logger.info(
                    "venta %s: a file assigned after this instance's own was kept (%s is %r, "
                    "this instance wrote %r)", self.pk, columna, actual, escrito)

        nuevo = asignada and bool(_nombre(self.__dict__.get(CAMPO_ARCHIVO)))
        if nuevo:
            self.confronta_subido_a_minio = False
            self.confronta_asignada_en = timezone.now()
        if update_fields is not None:
            if nuevo:
                update_fields += [c for c in CAMPOS_CON_ARCHIVO_NUEVO if c not in update_fields]
            kwargs["update_fields"] = update_fields
        else:
            fuera = set(CAMPOS_SOLO_SIDECAR)
            if not asignada:
                fuera.update(CAMPOS_CON_ARCHIVO_NUEVO)
            elif not nuevo:
                # Cleared: only the path; the time stays that of the last file assigned.
                fuera.update(c for c in CAMPOS_CON_ARCHIVO_NUEVO if c != CAMPO_ARCHIVO)
            diferidos = self.get_deferred_fields()
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name not in fuera and f.attname not in diferidos
            ]
        result = super().save(**kwargs)
        if CAMPO_ARCHIVO in kwargs["update_fields"]:
            self.__dict__["_confronta_leida"] = _nombre(self.__dict__.get(CAMPO_ARCHIVO))
        if asignada:
            self.__dict__["_confronta_asignada"] = False
            if fila is not None:
                self.__dict__["_confronta_escrito"] = (
                    (CAMPO_ASIGNADA, fila[1], self.confronta_asignada_en) if nuevo
                    else (CAMPO_ARCHIVO, fila[0], _nombre(self.__dict__.get(CAMPO_ARCHIVO)))
                )
        return result

    def _hay_asignacion(self) -> bool:
        """This code assigned a file or a path to `confronta` since the venta was loaded (or
        since that assignment was written)."""
        if self.__dict__.get("_confronta_asignada"):
            return True
        # An upload not yet stored, put in place without the descriptor (it is stored by
        # this save, so it is new).
        return getattr(self.__dict__.get(CAMPO_ARCHIVO), "_committed", True) is False

    def _olvidar_asignacion(self):
        """The instance now holds what the row holds (just loaded, refreshed or inserted)."""
        self.__dict__["_confronta_asignada"] = False
        self.__dict__["_confronta_escrito"] = None
        self.__dict__["_confronta_leida"] = _nombre(self.__dict__.get(CAMPO_ARCHIVO))


@functools.lru_cache(maxsize=None)
def _descriptor_que_anota(clase):
    """A subclass of the FileField's descriptor class that notes, on the instance, each
    assignment to `confronta`: an upload (the form's `save_form_data`), a stored file
    (`FieldFile.save()` sets the name it stored, even the name already there), a path, a
    clearing. Putting back the very object the field held (what a ModelForm does when no new
    file was chosen) is not an assignment."""

    class DescriptorQueAnota(clase):
        def __set__(self, instance, value):
            anterior = instance.__dict__.get(self.field.attname, _SIN_VALOR)
            super().__set__(instance, value)
            if value is not anterior:
                instance.__dict__["_confronta_asignada"] = True

    DescriptorQueAnota.__name__ = DescriptorQueAnota.__qualname__ = f"{clase.__name__}QueAnota"
    return DescriptorQueAnota


_SIN_VALOR = object()


def _anotar_asignaciones(sender, **kwargs):
    """Wraps the descriptor of `confronta` on each concrete model with the mixin, once the
    CRM's model class is complete (the mixin does not declare the field; the CRM's model
    does)."""
    if not issubclass(sender, ConfrontaMinioMixin) or sender._meta.abstract:
        return
    # The class attributes, not _meta: the app registry may still be loading.
    actual = next((k.__dict__[CAMPO_ARCHIVO] for k in sender.__mro__
                   if CAMPO_ARCHIVO in k.__dict__), None)
    campo = getattr(actual, "field", None)
    if not isinstance(campo, models.FileField) or getattr(actual, "_anota_confronta", False):
        return  # not a file field: the system checks say so (confronta_sync.E003)
    clase = _descriptor_que_anota(type(actual))
    clase._anota_confronta = True
    setattr(sender, CAMPO_ARCHIVO, clase(campo))
    campo.attr_class = _archivo_con_url_de_la_vista(campo.attr_class)


def _archivo_con_url_de_la_vista(clase):
    """A subclass of the field's FieldFile class whose `url` is the companion's download view
    for the venta, not the storage's public `/media/...` URL: Django's file widget
    ("Actualmente: <a href=...>", in every form and the admin), a serializer, or an old
    template's `{{ venta.confronta.url }}` then lead through the permission rule. Made once per
    class and kept in this module under its own name, so that pickled ventas unpickle."""
    nombre = f"{clase.__name__}ConVistaDeDescarga"
    existente = globals().get(nombre)
    if existente is not None and existente.__bases__ == (clase,):
        return existente
    if getattr(clase, "_url_de_la_vista", False):
        return clase

    def url(self):
        self._require_file()
        if self.instance.pk is None:
            return ""  # no venta yet, so no view to send anyone to
        from .templatetags.confronta_sync import url_descarga_confronta

        return url_descarga_confronta(self.instance)

    subclase = type(nombre, (clase,), {
        "url": property(url), "_url_de_la_vista": True, "__module__": __name__,
        "__qualname__": nombre,
        "__doc__": f"{clase.__name__} whose url is the permission-checked download view.",
    })
    globals()[nombre] = subclase
    return subclase


class_prepared.connect(_anotar_asignaciones, dispatch_uid="confronta_sync_anotar_asignaciones")
