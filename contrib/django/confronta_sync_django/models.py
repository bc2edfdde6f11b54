"""The MinIO fields of VentaPortabilidad and the methods that read them.

Inherit the mixin *before* models.Model:

    class VentaPortabilidad(ConfrontaMinioMixin, models.Model):
        confronta = models.FileField(upload_to="confrontas/", null=True, blank=True)
        ...

`python manage.py makemigrations telefonica` writes the migration that adds its five fields.

Who writes what: Django writes `confronta` (a new file) and `confronta_subido_a_minio` (False,
meaning "the file in `confronta` still has to go to MinIO"). The confronta-sync sidecar writes
`confronta_minio_url`, `confronta_minio_object_name`, `confronta_sha256`, sets
`confronta_subido_a_minio` to True and `confronta` to '' once the local file is gone; for a
file it refuses, it sets `confronta` to '' and writes the reason to `confronta_sync_error`. Nothing here
uploads.
"""

import logging
from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("confronta_sync_django")

#: Columns the sidecar writes. A save() of an instance loaded earlier leaves them alone unless
#: the code changed them (see ConfrontaMinioMixin.save).
CAMPOS_SIDECAR = (
    "confronta",
    "confronta_minio_url",
    "confronta_minio_object_name",
    "confronta_subido_a_minio",
    "confronta_sha256",
    "confronta_sync_error",
)


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


def _valor_comparable(value):
    """A FieldFile compares by its name; '' and None both mean "no file"."""
    if isinstance(value, bool):
        return value
    name = getattr(value, "name", value)
    return name if name not in ("", None) else None


class ConfrontaMinioMixin(models.Model):
    confronta_minio_url = models.URLField(
        verbose_name=_("URL MinIO Confronta"), null=True, blank=True
    )
    confronta_minio_object_name = models.CharField(
        max_length=500, verbose_name=_("Nombre Objeto MinIO Confronta"), null=True, blank=True
    )
    confronta_subido_a_minio = models.BooleanField(
        default=False, verbose_name=_("Confronta Subido a MinIO")
    )
    confronta_sha256 = models.CharField(
        max_length=64, verbose_name=_("SHA-256 Confronta"), null=True, blank=True
    )
    # Written by the sidecar when it refuses the file (type, size, virus), together with
    # `confronta = ''`: the reason to show, and the sign that a new upload is needed.
    confronta_sync_error = models.TextField(
        verbose_name=_("Motivo de rechazo de la confronta"), null=True, blank=True
    )

    class Meta:
        abstract = True

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
        return bool(self.confronta_sync_error) and not self.confronta

    @property
    def estado_confronta(self) -> str:
        """Where the confronta stands: ESTADO_MINIO, ESTADO_LOCAL, ESTADO_RECHAZADA or
        ESTADO_SIN (for the admin's column and filter, and for templates)."""
        if self.confronta_rechazada:
            return ESTADO_RECHAZADA
        if self.confronta:
            # A new local file is what counts, even while an older one is still in MinIO.
            return ESTADO_LOCAL
        if self.confronta_en_minio:
            return ESTADO_MINIO
        return ESTADO_SIN

    @property
    def confronta_pendiente_de_subir(self) -> bool:
        """A local file is waiting for the sidecar (new, or a correction)."""
        return bool(self.confronta) and not self.confronta_subido_a_minio

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
        """Mark the local confronta for (re-)upload: only resets `confronta_subido_a_minio`, in
        one UPDATE that touches nothing else. The sidecar picks up every row that still points
        at a local file, so this changes what the pages show, not whether it is uploaded.
        Returns False when there is no local file to upload."""
        if not self.confronta:
            return False
        type(self)._default_manager.filter(pk=self.pk).update(confronta_subido_a_minio=False)
        self.confronta_subido_a_minio = False
        if hasattr(self, "_confronta_cargado"):
            self._confronta_cargado["confronta_subido_a_minio"] = False
        return True

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # What the row held when loaded, to tell the columns this code changed from the ones
        # it merely carries around (Django's documented pattern for tracking loaded values).
        cargado = {}
        for name, value in zip(field_names, values):
            if name in CAMPOS_SIDECAR:
                cargado[name] = _valor_comparable(value)
        instance._confronta_cargado = cargado
        return instance

    def save(self, *args, **kwargs):
        """Saves as usual, with two differences once the instance is known to the database
        (loaded from it, or saved before):

        - a new confronta file (or path) marks the venta for upload
          (`confronta_subido_a_minio = False`) and keeps `confronta_minio_object_name`, which
          the sidecar needs to replace the old object;
        - the sidecar's columns that this code did not change are left out of the UPDATE, so a
          stale instance (a form opened before the sidecar finished) never writes back an old
          path or clears a recorded object.

        Inserts, and saves with explicit `update_fields`, write what they are told (plus the
        flag when `update_fields` names `confronta`). Nothing uploads.
        """
        cargado = getattr(self, "_confronta_cargado", None)
        if args or cargado is None or self._state.adding or kwargs.get("force_insert"):
            result = super().save(*args, **kwargs)
            self._confronta_cargado = {}
            self._actualizar_cargado(None)
            return result

        nuevo_archivo = bool(self.confronta) and (
            not getattr(self.confronta, "_committed", True)
            or _valor_comparable(self.confronta) != cargado.get("confronta")
        )
        if nuevo_archivo:
            self.confronta_subido_a_minio = False

        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            update_fields = list(update_fields)
            if nuevo_archivo and "confronta" in update_fields:
                update_fields.append("confronta_subido_a_minio")
                kwargs["update_fields"] = update_fields
        else:
            sin_cambios = {
                name
                for name in CAMPOS_SIDECAR
                if name in cargado
                and _valor_comparable(getattr(self, name)) == cargado[name]
                and not (name == "confronta" and nuevo_archivo)
            }
            if sin_cambios:
                diferidos = self.get_deferred_fields()
                kwargs["update_fields"] = [
                    f.name
                    for f in self._meta.concrete_fields
                    if not f.primary_key
                    and f.name not in sin_cambios
                    and f.attname not in diferidos
                ]
        result = super().save(*args, **kwargs)
        self._actualizar_cargado(kwargs.get("update_fields"))
        return result

    def _actualizar_cargado(self, fields):
        cargado = self._confronta_cargado
        diferidos = self.get_deferred_fields()
        for name in CAMPOS_SIDECAR:
            if name in diferidos:
                continue
            if fields is None or name in fields:
                cargado[name] = _valor_comparable(getattr(self, name))

    def refresh_from_db(self, using=None, fields=None, **kwargs):
        super().refresh_from_db(using=using, fields=fields, **kwargs)
        if getattr(self, "_confronta_cargado", None) is not None:
            self._actualizar_cargado(None if fields is None else set(fields))
