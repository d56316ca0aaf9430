"""One address, exactly: the only shape of address that enters the gateway (API, CLI, ``#observer add``,
parsed senders).

An address becomes a recipient, a header and a database value. Anything more than one RFC 5321
``local@domain`` (a second address after a comma, a display name, a CR/LF that starts a new
header, a NUL that PostgreSQL refuses, a value longer than a mail server takes) is refused where it
enters, with a reason, instead of being written into a mail.
"""

from __future__ import annotations

import argparse
import re
import unicodedata

_INVISIBLE = ("Cf", "Zs", "Zl", "Zp", "Mn")  # zero-width and format characters, spaces, lone combining marks
MAX_LENGTH = 254  # RFC 5321's path of 256 octets, less its angle brackets
# Neither part holds a control character, a space, or what separates or quotes addresses; UTF-8 is fine (RFC 6531).
_LOCAL = r"[^\s\x00-\x1f\x7f@,;:<>()\[\]\"\\]{1,64}"
_LABEL = r"[^\s\x00-\x1f\x7f@,;:<>()\[\]\"\\.]{1,63}"
_ADDR_SPEC = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+")


# Senders that take no reply (a carrier's "no-reply@", a bounce address), as a word of the local part
# (``no-reply``, ``orders-noreply``, ``bounces+123``): the one list.
_TAKES_NO_REPLY = re.compile(
    r"(?:.*[-_.+])?(?:no|do[-_.]?not|ne[-_.]?pas)[-_.]?(?:reply|respond|repondre)(?:[-_.+].*)?"
    r"|(?:.*[-_.+])?(?:mailer[-_.]?daemon|bounces?)(?:[-_.+].*)?", re.I)


class BadAddress(ValueError):
    """Not exactly one address; the message says why, for the person who typed it."""


def addr_spec(value: str) -> str:
    """``value`` as one lowercase address, or ``BadAddress``."""
    if len(value) > MAX_LENGTH:
        raise BadAddress(f"an address has at most {MAX_LENGTH} characters, not {len(value)}")
    if not _ADDR_SPEC.fullmatch(value) or value.startswith(".") or ".@" in value or ".." in value:
        raise BadAddress(f"{value!r} is not one address like jean@client.example")
    if any(not c.isascii() and (c.lower().isascii() or unicodedata.category(c) in _INVISIBLE) for c in value):
        # the Kelvin sign lowercases to k: "\u212aate@…" would be kate's address in the database
        raise BadAddress(f"{value!r} is not an address to trust: it holds a character that stands for another, or none")
    return value.lower()


def takes_no_reply(address: str) -> bool:
    """A sender that no acknowledgment should go to: its local part says it takes no reply."""
    return bool(_TAKES_NO_REPLY.fullmatch(address.rpartition("@")[0]))


def is_addr_spec(value: str) -> bool:
    try:
        addr_spec(value)
    except BadAddress:
        return False
    return True


def email_argument(value: str) -> str:
    """An EMAIL argument of the command line: exactly one address (else bad usage, exit 2)."""
    try:
        return addr_spec(value)
    except BadAddress as error:
        raise argparse.ArgumentTypeError(str(error)) from error
