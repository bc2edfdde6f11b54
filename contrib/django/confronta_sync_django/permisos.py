"""Who may download a venta's confronta, and who may mark it for re-upload: the seed plan's rule.

A rule is called as `regla(user, venta)`, with `venta=None` when the id the user asked for names
no venta: a rule returns True then for users who may learn that (they get a 404), False for the
others (a 403, the same as for a venta they may not see)."""

from django.db.models import Q

from .conf import agente_field

GRUPO_BACKOFFICE = "backoffice"      # matched exactly
GRUPO_ADMINISTRADOR = "Administrador"  # matched case-insensitively


def es_backoffice_o_admin(user) -> bool:
    """A superuser, or a member of `backoffice` or of `Administrador` (any case)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.groups.filter(
        Q(name=GRUPO_BACKOFFICE) | Q(name__iexact=GRUPO_ADMINISTRADOR)
    ).exists()


def es_agente_de(user, venta) -> bool:
    """The venta's own agent (the `agente` foreign key; see CONFRONTA_SYNC_AGENTE_FIELD)."""
    if venta is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    agente_id = getattr(venta, f"{agente_field()}_id", None)
    return agente_id is not None and agente_id == user.pk


def puede_descargar_confronta(user, venta) -> bool:
    """The owning agent, backoffice, Administrador (any case) or a superuser. Of a venta that
    does not exist (None), only the last three may learn it."""
    return es_agente_de(user, venta) or es_backoffice_o_admin(user)


def puede_resubir_confronta(user, venta) -> bool:
    """Backoffice, Administrador (any case) or a superuser; not the agent."""
    return es_backoffice_o_admin(user)
