"""One outgoing mail as bytes: headers that keep threads intact and robots quiet (CONTRACT §8).

The bytes are written directly rather than through ``EmailMessage(policy=SMTP)``: the
policy re-parses and refolds every header it is given, which made composing the most
expensive step of the whole pipeline (``bench/README.md``). What the policy did for us,
RFC 2047 words for non-ASCII headers and quoted-printable bodies, is done here with the
standard library's encoders.
"""

from __future__ import annotations

import base64
import quopri
import uuid
from datetime import UTC
from email.utils import format_datetime, formataddr, make_msgid
from functools import lru_cache

from gateway.models import utcnow
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


def _header(name: str, value: str) -> bytes:
    value = _safe(name, value)
    if value.isascii() and len(value) < 900:
        return f"{name}: {value}\r\n".encode()
    return _encoded_header(name, value)


def _address_header(name: str, address: str) -> bytes:
    """A bare address as it is: an internationalised one (``jérôme@…``) in raw UTF-8, as RFC 6532
    writes it (an RFC 2047 word is not allowed in an address, and no client would read it back)."""
    return f"{name}: {_safe(name, address)}\r\n".encode()


WORD_BYTES = 39  # of UTF-8 in one RFC 2047 word: 52 characters of base64, a line under 78 with its header name


@lru_cache(maxsize=512)
def _encoded_header(name: str, value: str) -> bytes:
    """RFC 2047 base64 words, one folded line each, never cutting a character in two.

    ``email.header.Header`` chose between encodings and folded in about 0.1 ms a header;
    these words cost a twentieth of that, and every mail client decodes them the same.
    """
    data, words, start = value.encode(), [], 0
    while start < len(data):
        end = min(start + WORD_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # a UTF-8 continuation byte
            end -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[start:end]).decode()}?=")
        start = end
    folded = "\r\n ".join(words)
    return f"{name}: {folded}\r\n".encode()


def _text_part(subtype: str, text: str) -> bytes:
    body = quopri.encodestring(text.replace("\r\n", "\n").encode("utf-8")).replace(b"\n", b"\r\n")
    return (f"Content-Type: text/{subtype}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + body + b"\r\n"


def _multipart(subtype: str, parts: list[bytes]) -> tuple[bytes, bytes]:
    """The Content-Type header and the body of a multipart made of ``parts``."""
    boundary = f"=_{uuid.uuid4().hex}"
    body = b"".join(f"--{boundary}\r\n".encode() + part for part in parts) + f"--{boundary}--\r\n".encode()
    return f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'.encode(), body


def compose(settings: Settings, *, mailbox: str, recipient: str, reply_to: str, rendered: RenderedMail,
            message_id: str, number: int | None = None, root_message_id: str | None = None,
            auto_submitted: str = "auto-generated", original: bytes | None = None) -> bytes:
    """A text + HTML mail to one recipient, whose Reply-To is that recipient's own reply address.

    ``number`` tags the subject ``[#N]``; ``root_message_id`` chains the mail to the request's
    first message so every client threads it; ``original`` is attached as ``message/rfc822``.
    """
    subject = f"[#{number}] {rendered.subject}" if number is not None else rendered.subject
    head = [
        _header("From", formataddr((settings.site_name, mailbox), charset="utf-8")),
        _address_header("To", recipient),
        _address_header("Reply-To", reply_to),
        _header("Subject", subject),
        _header("Message-ID", message_id),
        _header("Date", format_datetime(utcnow().replace(tzinfo=UTC))),
    ]
    if root_message_id:
        head += [_header("In-Reply-To", root_message_id), _header("References", root_message_id)]
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
    return b"".join(head) + content_type + b"\r\n" + body
