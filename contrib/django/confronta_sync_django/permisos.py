"""Who may download a venta's confronta, and who may mark it for re-upload."""

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
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    agente_id = getattr(venta, f"{agente_field()}_id", None)
    return agente_id is not None and agente_id == user.pk


def puede_descargar_confronta(user, venta) -> bool:
    """The owning agent, backoffice, Administrador (any case) or a superuser."""
    return es_agente_de(user, venta) or es_backoffice_o_admin(user)


def puede_resubir_confronta(user, venta) -> bool:
    """Backoffice, Administrador (any case) or a superuser; not the agent."""
    return es_backoffice_o_admin(user)
