"""Renders the migration template that adds the MinIO fields to the venta model."""

import re
from importlib import resources
from string import Template

PLANTILLA = "confronta_minio_migration.py-tpl"
_BLOQUE_SEMILLA = re.compile(
    r"\n[ \t]*# --- seed fields ---\n.*?[ \t]*# --- end of seed fields ---\n", re.S
)


def texto_plantilla() -> str:
    return (
        resources.files("confronta_sync_django")
        .joinpath("plantillas", PLANTILLA)
        .read_text(encoding="utf-8")
    )


def renderizar(app_label: str, dependencia: str, model_name: str, solo_sha256: bool = False) -> str:
    texto = texto_plantilla()
    if solo_sha256:
        texto = _BLOQUE_SEMILLA.sub("\n", texto)
    else:
        texto = texto.replace("        # --- seed fields ---\n", "").replace(
            "        # --- end of seed fields ---\n", ""
        )
    return Template(texto).substitute(
        app_label=app_label, dependencia=dependencia, model_name=model_name.lower()
    )
