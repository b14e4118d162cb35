"""Downloads: a `Content-Disposition` that carries any file name (RFC 6266)."""

from __future__ import annotations

import unicodedata
from urllib.parse import quote

_FALLBACK_KEEP = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._- ")


def ascii_filename(name: str) -> str:
    """The name with accents dropped and anything else outside a safe ASCII set as `_`
    (`faktura_č.pdf` -> `faktura_c.pdf`), for clients that do not read `filename*`."""
    decomposed = unicodedata.normalize("NFKD", name)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    safe = "".join(c if c in _FALLBACK_KEEP else "_" for c in kept).strip(" .")
    return safe or "download"


def attachment_disposition(name: str) -> str:
    """`attachment` with an ASCII `filename` and, when the name is not plain ASCII,
    the exact name as `filename*=UTF-8''...` (RFC 6266 section 4.3, RFC 8187).

    Header values are Latin-1 on the wire, so the name itself is never put in one.
    """
    fallback = ascii_filename(name)
    printable = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    if printable == fallback:
        return f'attachment; filename="{fallback}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(printable, safe='')}"
