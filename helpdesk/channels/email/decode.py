"""Mail bytes as text: charsets with real-world fallbacks, newline and surrogate hygiene."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def normalize_newlines(value: str) -> str:
    """Lines end in `\n` only, whether the mail was sent with CRLF, LF or bare CR."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


def clean_text(value: str) -> str:
    """Drop NUL and replace lone surrogates: PostgreSQL text accepts neither."""
    return _LONE_SURROGATE.sub("\ufffd", value.replace("\x00", ""))


def salvage(action: Callable[[], _T], fallback: _T, warnings: list[str], what: str) -> _T:
    """Run one parsing step; on any error record it and go on with `fallback`.

    This is the parser's promise (never raise on any input), so catching everything is
    deliberate here and only here: one broken part must not cost the rest of the mail.
    """
    try:
        return action()
    except Exception as error:  # the parser's promise, see docstring
        warnings.append(f"{what}: {type(error).__name__}")
        return fallback


# Labels whose common real-world meaning is wider than the registered one (as browsers do).
_CHARSET_LABELS = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "x-gbk": "gbk",
    "iso-8859-8-i": "iso-8859-8",
    "unknown-8bit": "",
    "x-unknown": "",
    "x-user-defined": "",
}
# Tried after UTF-8 when the declared charset fails: mail says gb2312 but sends GBK bytes.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "tis-620": "cp874",
    "ascii": "cp1252",
}


def codec_name(label: str | None) -> str | None:
    """Python codec for a MIME charset label, or None when unknown."""
    if not label:
        return None
    key = label.strip().strip("\"'").lower()
    key = _CHARSET_LABELS.get(key, key)
    if not key:
        return None
    try:
        return codecs.lookup(key).name
    except (LookupError, ValueError, UnicodeError):
        return None


def _replacement_ratio_ok(text: str) -> bool:
    """A few bad bytes in otherwise good text: keep it rather than guess another charset."""
    return text.count("\ufffd") <= max(2, len(text) // 100)


def _looks_like_utf8(text: str) -> bool:
    """More well-formed non-ASCII characters than broken bytes: UTF-8 with a few typos."""
    replaced = text.count("\ufffd")
    return sum(1 for char in text if char > "\x7f") - replaced > replaced


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode text that may lie about its charset; returns (text, codec used).

    Order: declared → UTF-8 → a superset of the declared charset, each strictly; then the
    declared charset (or evident UTF-8) with replacement if only a few bytes are bad;
    then cp1250, and finally latin-1, which decodes anything: the body is never dropped.
    """
    codec = codec_name(declared)
    strict = [codec, "utf-8", _CHARSET_SUPERSETS.get(codec or "")]
    tried: list[str] = []
    for name in strict:
        if name and name not in tried:
            tried.append(name)
            try:
                return data.decode(name), name
            except (UnicodeDecodeError, LookupError):
                continue
    tolerant = codec or "utf-8"
    text = data.decode(tolerant, "replace")
    if _replacement_ratio_ok(text) and (codec or _looks_like_utf8(text)):
        return text, f"{tolerant} (with replacements)"
    try:
        return data.decode("cp1250"), "cp1250"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"
