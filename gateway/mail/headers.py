"""Header values as text, for the parser, the classification and the bounce reader alike.

Every header the pipeline reads comes through here: messages are parsed with ``POLICY``, so
``get``, ``get_all``, ``get_filename`` and ``get_param`` give ``str`` whatever the message holds,
and ``decode_header_value`` turns RFC 2047 encoded words into text.
"""

from __future__ import annotations

import email.errors
import re
from email.header import decode_header
from email.policy import Compat32
from typing import Any

# windows-1252 is a superset of ISO-8859-1 for every printable character, and
# mail labelled ISO-8859-1 that holds 0x80-0x9F bytes is windows-1252 in practice.
CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "unknown-8bit": "cp1252",
                   "x-unknown": "cp1252"}


def _raw_8bit_as_text(value: str) -> str:
    """A header as the parser kept it (raw bytes as surrogate escapes) as text: UTF-8 (RFC 6532),
    else windows-1252 (the superset of Latin-1 that old mailers really send), else Latin-1."""
    raw = value.encode("ascii", "surrogateescape")
    for charset in ("utf-8", "cp1252"):
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


class TextHeaders(Compat32):
    """The stdlib's ``compat32`` (fast, never raises on broken input), except that a header holding
    raw 8-bit bytes is read as text. ``compat32`` hands such a header back as an ``email.header.Header``
    whose ``str`` turns every non-ASCII byte into U+FFFD: ``Jérôme`` became ``J��r��me``, and
    code that expected ``str`` (``.split``) died."""

    def header_fetch_parse(self, name: str, value: Any) -> Any:
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # surrogate escapes: the parser's raw bytes
                return _raw_8bit_as_text(value)
        return value


POLICY = TextHeaders()


_FOLD = re.compile(r"(?:\r\n|\r|\n)(?=[ \t])")


def decode_header_value(value: object) -> str:
    """An RFC 2047 header as text on one line, raw text and encoded words alike; a word in an
    unknown charset, or not valid in its own, is read as UTF-8 with what is broken replaced."""
    if value is None:
        return ""
    # Unfolded first (RFC 5322 2.2.3: the line break goes, its whitespace stays): decode_header drops a
    # fold's whitespace, and "=?utf-8?q?Canap=C3=A9?=" folded before " d'angle" read "Canapéd'angle".
    text = _FOLD.sub("", str(value))
    try:
        words = decode_header(text)
    except (ValueError, email.errors.HeaderParseError):
        words = [(text, None)]
    parts = []
    for word, charset in words:
        if isinstance(word, str):
            parts.append(word)
        elif charset is None:  # text between encoded words, which decode_header gives as raw-unicode-escape
            parts.append(_unescaped(word))
        else:
            parts.append(decode_text(word, charset, []))
    return " ".join("".join(parts).split())


def _unescaped(word: bytes) -> str:
    """Text ``decode_header`` wrote as raw-unicode-escape. A backslash the text holds itself (a Windows
    path: ``C:\\users``) reads as a broken escape: then the bytes are taken as they are."""
    try:
        return word.decode("raw-unicode-escape")
    except UnicodeDecodeError:
        return word.decode("latin-1")


def decode_text(data: bytes, charset: str | None, defects: list[str]) -> str:
    """Bytes in their declared charset, which ``defects`` is told when it is unknown or wrong. With
    none declared (or ASCII, which 8-bit bytes belie), UTF-8 first: RFC 6532 mail and scripts send it
    undeclared. What is not UTF-8 is read as windows-1252."""
    declared = (charset or "us-ascii").lower()
    if declared in ("us-ascii", "ascii"):
        if data.isascii():
            return data.decode("ascii")
    else:
        declared = CHARSET_ALIASES.get(declared, declared)
        try:
            return data.decode(declared)
        except UnicodeDecodeError:
            defects.append(f"body is not valid {declared}")
        except (LookupError, ValueError):  # ValueError: a name with a NUL in it, which the codec lookup refuses
            defects.append(f"unknown charset {declared!r}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")
