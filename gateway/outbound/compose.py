"""One outgoing mail as bytes: headers that keep threads intact and robots quiet (CONTRACT §8).

The bytes are written directly rather than through ``EmailMessage(policy=SMTP)``: the
policy re-parses and refolds every header it is given, which made composing the most
expensive step of the whole pipeline (``bench/README.md``). The email library still folds a
long ASCII header and quotes a display name; non-ASCII header text is written as RFC 2047 words
here, once per distinct value; quoted-printable bodies come from the standard library's encoder.
"""

from __future__ import annotations

import base64
import quopri
import uuid
from collections.abc import Sequence
from datetime import UTC
from email.header import Header
from email.message import MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from functools import lru_cache
from typing import NamedTuple

from gateway.clock import utcnow
from gateway.outbound.render import RenderedMail
from gateway.settings import Settings


def new_message_id(settings: Settings) -> str:
    return make_msgid(domain=settings.domain)


class UnsafeHeader(ValueError):
    """A header value that would end its line (CR, LF) or hold a NUL: written, it would start headers
    or a body of its own (a Bcc, a Subject, the HTML of a phishing mail). Never written."""


def _safe(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise UnsafeHeader(f"the {name} header would hold a line break or a NUL: {value[:80]!r}")
    return value


# What ``str.splitlines`` takes for a line end besides CR and LF: the email library's folder cuts a
# value there and loses the character, so the composer writes each as a space.
_OTHER_LINE_BREAKS = str.maketrans(dict.fromkeys("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", " "))


def _header(name: str, value: str) -> bytes:
    """A header line; a value with nothing to fold or encode is written as it is, the rest by ``_folded``."""
    value = _safe(name, value).translate(_OTHER_LINE_BREAKS)
    if value.isascii() and len(name) + len(value) < 76 and "=?" not in value and not value[:1].isspace():
        return f"{name}: {value}\r\n".encode()
    return _folded(name, value)


def _identifier_header(name: str, message_id: str) -> bytes:
    """Message-ID, In-Reply-To, References: written as they are, never folded inside an identifier nor
    encoded (a client matches them byte for byte to thread a conversation, and a customer's own
    Message-ID, which the request's mails name, is often longer than a folded line: Gmail's, Outlook's).
    RFC 5322 allows the line up to 998 characters."""
    return f"{name}: {_safe(name, message_id).translate(_OTHER_LINE_BREAKS)}\r\n".encode()


def _address_header(name: str, address: str) -> bytes:
    """A bare address as it is: an internationalised one (``jérôme@…``) in raw UTF-8, as RFC 6532
    writes it (an RFC 2047 word is not allowed in an address, and no client would read it back)."""
    return f"{name}: {_safe(name, address)}\r\n".encode()


_LONGEST_PLAIN_WORD = 60
_LINE = 76  # the longest header line written, folding white space included (RFC 2047 §2: 76)
_WORD_FRAME = len("=?utf-8?q?") + len("?=")
# RFC 2047 §5 (3): what a "Q" word may hold as itself in a header's text; space is written "_".
_Q_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")


def _q(character: str) -> str:
    if character in _Q_PLAIN:
        return character
    if character == " ":
        return "_"
    return "".join(f"={byte:02X}" for byte in character.encode("utf-8"))


def _encoded_words(name: str, value: str) -> str:
    """``value`` as RFC 2047 "Q" words in UTF-8, folded so no line passes 76 characters.

    Written here in one pass because the email library's encoder (``Header``) measures the
    line again after each character it adds. Words are cut between characters, never inside one
    (RFC 2047 §5), and a reader joins adjacent words without the folding white space between them (§6.2).
    """
    lines: list[str] = []
    room = _LINE - len(name) - len(": ") - _WORD_FRAME
    word: list[str] = []
    used = 0
    for character in value:
        encoded = _q(character)
        if used + len(encoded) > room and word:
            lines.append("=?utf-8?q?" + "".join(word) + "?=")
            room, word, used = _LINE - len(" ") - _WORD_FRAME, [], 0
        word.append(encoded)
        used += len(encoded)
    lines.append("=?utf-8?q?" + "".join(word) + "?=")
    return "\r\n ".join(lines)


@lru_cache(maxsize=512)
def _folded(name: str, value: str) -> bytes:
    """Folded under 78 characters: plain ASCII at its spaces by the email library
    (``email.header.Header``); anything else as RFC 2047 UTF-8 words (:func:`_encoded_words`):
    non-ASCII text, a word too long for a line (folded at a space it would come back with one
    more), a leading space (it would be lost), text that a client would read as an encoded word
    (``=?…?=``). A subject is the same for each recipient of a mail, hence the cache.
    """
    plain = (value.isascii() and "=?" not in value and not value[:1].isspace()
             and all(len(word) < _LONGEST_PLAIN_WORD for word in value.split()))
    folded = Header(value, header_name=name).encode(linesep="\r\n") if plain else _encoded_words(name, value)
    return f"{name}: {folded}\r\n".encode()


@lru_cache(maxsize=64)
def _sender(display_name: str, address: str) -> bytes:
    """From, its display name quoted or encoded by ``formataddr``: one RFC 2047 word, never folded
    (readers put a space between two words of a display name, and a site's name is short)."""
    display_name = _safe("From", display_name).translate(_OTHER_LINE_BREAKS)
    return f"From: {formataddr((display_name, address), charset='utf-8')}\r\n".encode()


def _text_part(subtype: str, text: str) -> bytes:
    body = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8")).replace(b"\n", b"\r\n")
    return (f"Content-Type: text/{subtype}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + body + b"\r\n"


def _multipart(subtype: str, parts: list[bytes]) -> tuple[bytes, bytes]:
    """The Content-Type header and the body of a multipart made of ``parts``."""
    boundary = f"=_{uuid.uuid4().hex}"
    body = b"".join(f"--{boundary}\r\n".encode() + part for part in parts) + f"--{boundary}--\r\n".encode()
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'.encode(), body


class MailFile(NamedTuple):
    """A file a mail carries (a delivery's files)."""

    filename: str
    content_type: str
    payload: bytes


@lru_cache(maxsize=32)
def _file_part(file: MailFile) -> bytes:
    """One attachment: its headers written by the email library as its ``set_content`` writes them (a
    file name of any script encoded as RFC 2231 says; a control character in it is dropped, never
    written), its bytes in base64 lines by ``base64.encodebytes``, the same lines the library's encoder
    makes a 57-byte chunk at a time in Python. Written once for all the mails that carry it: a
    comment's files go to each of its recipients alike."""
    maintype, _, subtype = file.content_type.partition("/")
    if not maintype or not subtype or maintype in ("multipart", "message", "text"):
        maintype, subtype = "application", "octet-stream"  # as bytes: what a sender called it is not trusted
    name = "".join(c for c in file.filename if c.isprintable()) or "file"
    part = MIMEPart(policy=SMTP)
    part["Content-Type"] = f"{maintype}/{subtype}"
    part["Content-Transfer-Encoding"] = "base64"
    part["Content-Disposition"] = "attachment"
    part.set_param("filename", name, header="Content-Disposition")
    return part.as_bytes() + base64.encodebytes(file.payload).replace(b"\n", b"\r\n")


def compose(settings: Settings, *, mailbox: str, recipient: str, reply_to: str, rendered: RenderedMail,
            message_id: str, number: int | None = None, root_message_id: str | None = None,
            auto_submitted: str = "auto-generated", original: bytes | None = None,
            files: Sequence[MailFile] = ()) -> bytes:
    """A text + HTML mail to one recipient, whose Reply-To is that recipient's own reply address.

    ``number`` tags the subject ``[#N]``; ``root_message_id`` chains the mail to the request's
    first message so every client threads it; ``original`` is attached as ``message/rfc822``,
    ``files`` as attachments.
    """
    subject = f"[#{number}] {rendered.subject}" if number is not None else rendered.subject
    head = [
        _sender(settings.site_name, mailbox),
        _address_header("To", recipient),
        _address_header("Reply-To", reply_to),
        _header("Subject", subject),
        _identifier_header("Message-ID", message_id),
        _header("Date", format_datetime(utcnow().replace(tzinfo=UTC))),
    ]
    if root_message_id:
        head += [_identifier_header("In-Reply-To", root_message_id), _identifier_header("References", root_message_id)]
    head += [_header("Auto-Submitted", auto_submitted), _header("X-Auto-Response-Suppress", "All")]
    if number is not None:
        head.append(_header("X-Gateway-Request", str(number)))
    head.append(b"MIME-Version: 1.0\r\n")
    content_type, body = _multipart("alternative", [_text_part("plain", rendered.text),
                                                    _text_part("html", rendered.html)])
    if original is not None:
        lines = original.replace(b"\r\n", b"\n").rstrip(b"\n").replace(b"\n", b"\r\n")
        encoding = b"7bit" if lines.isascii() else b"8bit"
        embedded = (b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + encoding + b"\r\n"
                    b"Content-Disposition: attachment; filename=\"original.eml\"\r\n\r\n" + lines + b"\r\n")
        content_type, body = _multipart("mixed", [content_type + b"\r\n" + body, embedded])
    if files:
        content_type, body = _multipart("mixed", [content_type + b"\r\n" + body, *map(_file_part, files)])
    return b"".join(head) + content_type + b"\r\n" + body
