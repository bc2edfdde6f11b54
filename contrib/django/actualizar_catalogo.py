#!/usr/bin/env python
"""Regenerates the Spanish catalogue, confronta_sync_django/locale/es/LC_MESSAGES/django.{po,mo}.

    cd contrib/django && python actualizar_catalogo.py     # in a venv with Django; needs GNU
                                                           # gettext (xgettext, msgfmt)

The app's source strings are Spanish (what the CRM's agents read, also with USE_I18N = False),
so each msgstr is its msgid: the catalogue is the complete list of what the app says, with
Spanish plural rules, for a CRM to override (LOCALE_PATHS) or to translate from. Steps:
`makemessages -l es`, each empty msgstr filled with its msgid, `msgfmt --check` into the .mo.
tests/test_catalogo.py fails when the committed .mo is not the .po compiled, or a message the
app shows is missing from it.
"""

import os
from datetime import datetime, timezone
import subprocess
import sys
from pathlib import Path

AQUI = Path(__file__).resolve().parent
APP = AQUI / "confronta_sync_django"
PO = APP / "locale" / "es" / "LC_MESSAGES" / "django.po"

CABECERA = """# Spanish messages of confronta-sync-django (its source strings are Spanish; see
# actualizar_catalogo.py). Distributed under the same licence as the package (MIT).
msgid ""
msgstr ""
"Project-Id-Version: confronta-sync-django\\n"
"Report-Msgid-Bugs-To: \\n"
"PO-Revision-Date: {fecha}\\n"
"Last-Translator: the confronta-sync authors\\n"
"Language-Team: Spanish\\n"
"Language: es\\n"
"MIME-Version: 1.0\\n"
"Content-Type: text/plain; charset=UTF-8\\n"
"Content-Transfer-Encoding: 8bit\\n"
"Plural-Forms: nplurals=3; plural=n == 1 ? 0 : n != 0 && n % 1000000 == 0 ? 1 : 2;\\n"
"""


def rellenar(texto: str) -> str:
    """Each entry's msgstr (msgstr[i]) becomes its msgid (msgid_plural for i > 0)."""
    fecha = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M+0000")
    salida = [CABECERA.format(fecha=fecha).rstrip("\n")]
    for entrada in texto.split("\n\n")[1:]:  # [0] is makemessages' header
        lineas, cadenas, clave = [], {}, None
        for linea in entrada.strip("\n").split("\n"):
            if linea.startswith("#|"):
                continue  # msgmerge's previous msgid of a fuzzy entry
            if linea.startswith("#,"):
                # Every msgstr is its msgid, so a changed msgid is never fuzzy (msgfmt would
                # leave a fuzzy entry out of the .mo).
                banderas = [b.strip() for b in linea[2:].split(",") if b.strip() != "fuzzy"]
                if not banderas:
                    continue
                linea = "#, " + ", ".join(banderas)
            if linea.startswith('"'):
                if clave is None:
                    raise ValueError(f"a string outside any keyword in {entrada!r}")
                cadenas[clave] += linea[1:-1]
            else:
                clave = linea.split(" ", 1)[0] if linea.startswith("msg") else None
                if clave is not None:
                    cadenas[clave] = linea.split(" ", 1)[1][1:-1]
            if clave is None or not clave.startswith("msgstr"):
                lineas.append(linea)
        if not cadenas:
            continue
        if "msgid_plural" in cadenas:
            for i in range(3):
                lineas.append(f'msgstr[{i}] "{cadenas["msgid" if i == 0 else "msgid_plural"]}"')
        else:
            lineas.append(f'msgstr "{cadenas["msgid"]}"')
        salida.append("\n".join(lineas))
    return "\n\n".join(salida) + "\n"


def main():
    entorno = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings",
                   PYTHONPATH=str(AQUI) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    subprocess.run([sys.executable, "-m", "django", "makemessages", "-l", "es",
                    "--add-location", "file", "--no-obsolete"],
                   cwd=APP, env=entorno, check=True)
    PO.write_text(rellenar(PO.read_text()))
    subprocess.run(["msgcat", "-o", str(PO), str(PO)], check=True)  # wrapped at 79 columns
    subprocess.run(["msgfmt", "--check", "-o", str(PO.with_suffix(".mo")), str(PO)], check=True)
    print(f"{PO} and its .mo are up to date")


if __name__ == "__main__":
    main()
