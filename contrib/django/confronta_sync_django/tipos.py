"""The type of a file by its first bytes, as the sidecar tells it (the Rust `infer` crate, 0.19).

`infer::get` tries its matchers in a fixed order and answers with the first that matches. This
module ports, in that order, the matchers of the five kinds the sidecar allows by default (pdf,
jpg, png, tif, heic) and of every matcher `infer` tries before one of them that can match the
same bytes (mobi: bytes 60-67; webp: 8-11; cr2; ico: an `ftyp` box of 256 bytes; mkv: 31-38;
mov: 12-15; tar: 257-261), plus the two executables an upload is most often disguised as (exe,
elf), for the message. So for every head of a file, `tipo()` is one of the five exactly when
`infer::get` says so, which is all the validator needs: a file whose type is not one of the
allowed kinds is refused either way. For allowed types beyond these five, the validator checks
the extension only (`manage.py check` says so, confronta_sync.W014).

Each function is the Rust matcher of the same name (`infer/src/matchers/*.rs`), line for line.
"""

from typing import Callable, Optional, Sequence, Tuple

#: How much of a file the sidecar reads to tell its type (`hash::HEAD_BYTES`).
BYTES_CABECERA = 8192

#: The kinds whose matchers are complete here (see the module's docstring).
TIPOS_CONOCIDOS = frozenset({"pdf", "jpg", "png", "tif", "heic"})

_TIFF_II = bytes([0x49, 0x49, 0x2A, 0x00])
_TIFF_MM = bytes([0x4D, 0x4D, 0x00, 0x2A])


def is_elf(b: bytes) -> bool:
    return len(b) > 52 and b[:4] == b"\x7fELF"


def is_exe(b: bytes) -> bool:
    return len(b) > 1 and b[0] == 0x4D and b[1] == 0x5A


def is_mobi(b: bytes) -> bool:
    return len(b) > 67 and b[60:68] == b"BOOKMOBI"


def is_jpeg(b: bytes) -> bool:
    return len(b) > 2 and b[0] == 0xFF and b[1] == 0xD8 and b[2] == 0xFF


def is_png(b: bytes) -> bool:
    return len(b) > 3 and b[:4] == b"\x89PNG"


def is_webp(b: bytes) -> bool:
    return len(b) > 11 and b[8:12] == b"WEBP"


def is_cr2(b: bytes) -> bool:
    return (len(b) > 10 and b[:4] in (_TIFF_II, _TIFF_MM)
            and b[8] == 0x43 and b[9] == 0x52 and b[10] == 0x02)


def is_tiff(b: bytes) -> bool:
    # infer's own test: not a CR2, and neither byte 8 is 'C' nor byte 9 'R'.
    return (len(b) > 9 and b[:4] in (_TIFF_II, _TIFF_MM)
            and b[8] != 0x43 and b[9] != 0x52 and not is_cr2(b))


def is_ico(b: bytes) -> bool:
    return len(b) > 3 and b[:4] == b"\x00\x00\x01\x00"


def _is_isobmff(b: bytes) -> bool:
    return len(b) >= 16 and b[4:8] == b"ftyp" and len(b) >= int.from_bytes(b[0:4], "big")


def is_heif(b: bytes) -> bool:
    if not b or not _is_isobmff(b):
        return False
    longitud = int.from_bytes(b[0:4], "big")
    mayor = b[8:12]
    if mayor in (b"heic", b"heix"):
        return True
    if mayor in (b"mif1", b"msf1"):
        # get_ftyp: whole 4-byte chunks from byte 16, at most (ftyp length / 4) - 4 of them.
        compatibles = [b[i:i + 4] for i in range(16, len(b) - 3, 4)][:max(longitud // 4 - 4, 0)]
        return b"heic" in compatibles
    return False


def is_mkv(b: bytes) -> bool:
    return ((len(b) > 15 and b[:16] == bytes([0x1A, 0x45, 0xDF, 0xA3, 0x93, 0x42, 0x82, 0x88])
             + b"matroska")
            or (len(b) > 38 and b[31:39] == b"matroska"))


def is_mov(b: bytes) -> bool:
    return len(b) > 15 and ((b[4:8] == b"ftyp" and b[8:12] == b"qt  ") or b[4:8] == b"moov"
                            or b[4:8] == b"mdat" or b[12:16] == b"mdat")


def is_tar(b: bytes) -> bool:
    return len(b) > 261 and b[257:262] == b"ustar"


def is_pdf(b: bytes) -> bool:
    return len(b) > 3 and b[:4] == b"%PDF"


#: infer's order (MATCHER_MAP: application, book, image, video, archive), and the extension
#: each matcher answers with, normalised as the sidecar normalises (heif is heic).
_MATCHERS: Sequence[Tuple[str, Callable[[bytes], bool]]] = (
    ("elf", is_elf),
    ("exe", is_exe),
    ("mobi", is_mobi),
    ("jpg", is_jpeg),
    ("png", is_png),
    ("webp", is_webp),
    ("cr2", is_cr2),
    ("tif", is_tiff),
    ("ico", is_ico),
    ("heic", is_heif),
    ("mkv", is_mkv),
    ("mov", is_mov),
    ("tar", is_tar),
    ("pdf", is_pdf),
)


def tipo(cabecera: bytes) -> Optional[str]:
    """The kind of the file whose first bytes (up to BYTES_CABECERA) are `cabecera`, or None
    when none of the matchers here recognises it."""
    for extension, coincide in _MATCHERS:
        if coincide(cabecera):
            return extension
    return None


def normalizar(extension: str) -> str:
    """The sidecar's `normalise`: lowercase; jpeg is jpg, tiff is tif, heif is heic."""
    extension = extension.lower()
    return {"jpeg": "jpg", "tiff": "tif", "heif": "heic"}.get(extension, extension)


def extension_de(nombre: str) -> str:
    """The extension of a path as the sidecar reads it (`RelativeMediaPath::extension`): of its
    last component, after the last dot, lowercase and without the dot; '' for `.hidden`,
    `README` or `x.`."""
    base = nombre.replace("\\", "/").rsplit("/", 1)[-1]
    punto = base.rfind(".")
    if punto > 0 and punto + 1 < len(base):
        return base[punto + 1:].lower()
    return ""
