"""Header values as text, for the parser and the classification alike."""

from __future__ import annotations

import email.errors
from email.header import decode_header, make_header


def decode_header_value(value: object) -> str:
    """An RFC 2047 header as text on one line; undecodable words are kept as they came."""
    if value is None:
        return ""
    text = str(value)
    try:
        text = str(make_header(decode_header(text)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        pass
    return " ".join(text.split())
