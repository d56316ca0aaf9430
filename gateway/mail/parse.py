"""One raw message into the fields the pipeline works on (CONTRACT §6).

The standard library's ``compat32`` parser does the MIME walk (with raw 8-bit headers read as
text, ``headers.POLICY``): it is much faster than ``policy=default``, never
raises on broken input, and records what it had to repair in ``defects``. Header decoding,
charsets and the choice of body are ours.
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import errors
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime
from typing import Any

from gateway.addresses import is_addr_spec
from gateway.mail import forwards
from gateway.mail.classify import Classification, classify, suppresses_auto_response
from gateway.mail.forwards import Original
from gateway.mail.headers import POLICY, decode_header_value, decode_text
from gateway.mail.html import html_to_text
from gateway.mail.replies import extract_reply

_TRACE_HEADERS = re.compile(rb"^(received|return-path|delivered-to|x-original-to)\s*:.*?(?=^\S|\Z)",
                            re.I | re.M | re.S)
_MESSAGE_ID = re.compile(r"<[^<>\s\x00-\x1f\x7f]{1,996}>")  # a column holds 998 characters
MAX_MULTIPARTS = 100
MAX_PARTS = 1000
_MULTIPART = re.compile(rb"^content-type:[ \t]*multipart/", re.I | re.M)
_CONTENT_TYPE = re.compile(rb"^content-type:", re.I | re.M)
_TOKEN_LOCAL = re.compile(r"^[^+@]+\+([a-z0-9]{1,40})@", re.I)


@dataclass(frozen=True)
class Address:
    address: str
    name: str

    def as_json(self) -> dict[str, str]:
        return {"address": self.address, "name": self.name}


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    payload: bytes
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"filename": self.filename, "content_type": self.content_type,
                "size": len(self.payload), "sha256": self.sha256}


@dataclass(frozen=True)
class ParsedMail:
    """What the pipeline sees of one message: plain data, so it can be parsed in one process and
    applied in another."""

    sender: Address | None
    to: list[Address]
    cc: list[Address]
    subject: str
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    date: datetime | None
    text: str
    reply_text: str
    html: str | None
    attachments: list[Attachment]
    classification: Classification
    embeds_message: bool = False  # a ``message/rfc822`` part: a forward with the original inside
    # The reply in the sender's own parts, when the mail carries a message: where commands are read.
    own_reply_text: str | None = None
    forwarded: Original | None = None  # a forward, read back: the original's sender, subject, text
    sender_unambiguous: bool = True  # From is one address that a strict parser reads the same (``_unambiguous``)
    authentication_results: tuple[str, ...] = ()  # every Authentication-Results header, as received
    suppresses_auto_response: bool = False  # the sender asked for no automatic answer
    defects: list[str] = field(default_factory=list)

    @property
    def auto(self) -> str | None:
        return self.classification.auto

    def recipients(self) -> list[Address]:
        return self.to + self.cc

    def tokens(self, extra_recipients: list[str] | tuple[str, ...] = ()) -> list[str]:
        """Reply tokens (``local+TOKEN@``) in the envelope and header recipients, in order, once each."""
        return list(dict.fromkeys(token for _address, token in self.reply_addresses(extra_recipients)))

    def reply_addresses(self, extra_recipients: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
        """``(address, token)`` of each reply address (``mailbox+TOKEN@domain``) among the envelope and
        header recipients, in order: a token is checked against the mailbox it came with."""
        found = []
        for address in [*extra_recipients, *(a.address for a in self.recipients())]:
            match = _TOKEN_LOCAL.match(address)
            if match:
                found.append((address.lower(), match.group(1).lower()))
        return found


@dataclass(frozen=True)
class Heads:
    """What admission reads of a message (``intake.conversation``): a few headers, never the body."""

    message_id: str | None
    sender: str  # the From address, lowercased; "" when there is none
    recipients: list[str]  # To and Cc
    references: list[str]  # In-Reply-To, then References from the nearest


# The few header fields ``read_heads`` wants, each with its folded lines, anywhere in the header block.
_HEAD_FIELD = re.compile(rb"^(from|to|cc|message-id|in-reply-to|references)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_HEADERS_END = re.compile(rb"\r?\n\r?\n")


def read_heads(raw: bytes) -> Heads:
    """The headers ``Heads`` holds, picked out of the header block by one expression, not by the email
    parser's headers-only pass, which admission would pay for every message."""
    end = _HEADERS_END.search(raw)
    fields: dict[str, list[str]] = {}
    for name, value in _HEAD_FIELD.findall(raw[:end.start()] if end else raw):
        fields.setdefault(name.lower().decode(), []).append(value.decode("utf-8", "replace"))

    def addresses(name: str) -> list[str]:
        found = (address.strip().lower() for _display, address in getaddresses(fields.get(name, [])))
        return [address for address in found if is_addr_spec(address)]

    def ids(name: str) -> list[str]:
        return _message_ids(" ".join(fields.get(name, [])))

    return Heads(message_id=next(iter(ids("message-id")), None), sender=next(iter(addresses("from")), ""),
                 recipients=addresses("to") + addresses("cc"),
                 references=[*ids("in-reply-to"), *reversed(ids("references"))])


def _addresses(message: Message, name: str) -> list[Address]:
    """The header's addresses that are exactly one address each (``addresses.addr_spec``): anything else
    (a control character, a display name inside the address, 300 characters) names no one."""
    values = [str(v) for v in message.get_all(name, [])]
    result = []
    for display, address in getaddresses(values):
        if is_addr_spec(address.strip()):
            result.append(Address(address=address.strip().lower(),
                                  name=without_nul(decode_header_value(display))[:_NAME_LENGTH]))
    return result


_NAME_LENGTH = 200  # people.name and participants.name
_FILENAME_LENGTH = 255  # of comment_attachments.filename's 500, what a file system takes
_CONTENT_TYPE_LENGTH = 200
_STRICT_ADDRESSES = HeaderRegistry()
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# A UTF-8 local part (RFC 6532), and RFC 5322's obsolete syntax that real names use ("J. Doe <…>").
_TOLERATED = (errors.NonASCIILocalPartDefect, errors.ObsoleteHeaderDefect)
# What nearly every From is, read the same by any parser: an address, alone or in angle brackets
# after a display name with nothing in it that separates, quotes or comments.
_ATOMS = r"[A-Za-z0-9_%+'-]+(?:\.[A-Za-z0-9_%+'-]+)*"
_PLAIN_ADDRESS = rf"{_ATOMS}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
# A display name neither starts nor ends with a dot or a space, and holds no control character nor
# encoded word (the strict parser reads those with defects): those go the strict way.
_NAME_END = r"[^\".<>,;:@\\()\[\]\s\x00-\x1f\x7f-\x9f=]"
_PLAIN_FROM = re.compile(rf"[ \t]*(?:{_NAME_END}(?:[^\"<>,;:@\\()\[\]\x00-\x1f\x7f-\x9f=]*{_NAME_END})?[ \t]*"
                         rf"<(?P<named>{_PLAIN_ADDRESS})>"
                         rf"|<(?P<angled>{_PLAIN_ADDRESS})>|(?P<bare>{_PLAIN_ADDRESS}))[ \t]*")


def _unambiguous(message: Message, sender: Address | None) -> bool:
    """Whether From names exactly one address that the RFC 5322 parser of ``policy.default`` reads the
    same, without repair. The lax one (``getaddresses``) read ``<alice@shop.example>@attacker.example``
    as Alice; a From that two parsers read differently names no one."""
    values = message.get_all("From", [])
    if sender is None or len(values) != 1:
        return False
    plain = _PLAIN_FROM.fullmatch(str(values[0]))
    if plain is not None:  # the strict parser, costly, would only agree
        return (plain.group("named") or plain.group("angled") or plain.group("bare")).lower() == sender.address
    return strictly_one(str(values[0]), sender.address)


def strictly_one(value: str, address: str) -> bool:
    """Whether the strict parser reads ``value`` as the one ``address``, repairing nothing that matters."""
    try:
        strict = _STRICT_ADDRESSES("From", _FOLD.sub("", value))
    except Exception:  # the stdlib's parser has raised AttributeError on some From lines: ambiguous, then
        return False
    addresses = strict.addresses  # type: ignore[attr-defined]
    in_groups = any(group.display_name is not None for group in strict.groups)  # type: ignore[attr-defined]
    return (len(addresses) == 1 and addresses[0].addr_spec.lower() == address and not in_groups
            and all(isinstance(defect, _TOLERATED) for defect in strict.defects))


def _message_ids(value: str | None) -> list[str]:
    return _MESSAGE_ID.findall(str(value)) if value else []


def _decode_part(part: Message, defects: list[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return decode_text(payload, part.get_content_charset(), defects)


def _filename(part: Message) -> str | None:
    """The attachment's name as text, cut to what the column holds (keeping its extension)."""
    name = without_nul(decode_header_value(part.get_filename() or ""))
    if len(name) > _FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        name = stem[:_FILENAME_LENGTH - 1 - len(extension)] + dot + extension if dot and len(extension) < 20 \
            else name[:_FILENAME_LENGTH]
    return name or None


def _walk_bodies(parts: Iterable[Message], defects: list[str]) -> tuple[list[str], list[str], list[Attachment]]:
    texts: list[str] = []
    htmls: list[str] = []
    attachments: list[Attachment] = []
    for part in parts:
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        filename = _filename(part)
        is_body = disposition != "attachment" and filename is None
        if is_body and content_type == "text/plain":
            texts.append(_decode_part(part, defects))
        elif is_body and content_type == "text/html":
            htmls.append(_decode_part(part, defects))
        elif content_type.startswith("message/") or (
            is_body and content_type.startswith("text/") and content_type != "text/plain"
        ):
            continue
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            attachments.append(Attachment(
                filename=filename or "attachment", content_type=content_type[:_CONTENT_TYPE_LENGTH], payload=data,
                sha256=hashlib.sha256(data).hexdigest()))
    return texts, htmls, attachments


def _own_parts(part: Message) -> Iterator[Message]:
    """The parts of a message that are its own, not those of a message it carries (``message/rfc822``)."""
    if part.get_content_type().startswith("message/"):
        return
    yield part
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _own_parts(sub)


def _body(texts: list[str], htmls: list[str]) -> tuple[str, str | None]:
    """The text of the body parts (the HTML's, turned into text, when there is no plain one), with
    ``\n`` line ends, and the HTML."""
    html = without_nul("\n".join(htmls)) if htmls else None
    text = without_nul("\n".join(texts) if texts else (html_to_text(html) if html else ""))
    return text.replace("\r\n", "\n").replace("\r", "\n"), html


def _own_reply_text(message: Message) -> str:
    """The reply in the sender's own parts alone, leaving out the messages the mail carries."""
    texts, htmls, _files = _walk_bodies(_own_parts(message), [])
    return extract_reply(*_body(texts, htmls))


def _date(message: Message, defects: list[str]) -> datetime | None:
    value = message.get("Date")
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        defects.append(f"unreadable Date header {str(value)[:60]!r}")
        return None


def _structure_problem(raw: bytes) -> str | None:
    """Why the MIME structure is not walked at all: nested or split past what any mailer sends. The
    stdlib parser recurses once per level (a thousand levels raised RecursionError) and keeps every part."""
    multiparts = len(_MULTIPART.findall(raw))
    if multiparts > MAX_MULTIPARTS:
        return f"{multiparts} multipart parts (at most {MAX_MULTIPARTS} are read): the body is kept as it came"
    parts = len(_CONTENT_TYPE.findall(raw))
    if parts > MAX_PARTS:
        return f"{parts} MIME parts (at most {MAX_PARTS} are read): the body is kept as it came"
    return None


def without_nul(text: str) -> str:
    """NUL is the one character a PostgreSQL text column refuses; it carries nothing a person reads."""
    return text.replace("\x00", "") if "\x00" in text else text


def _drop_charsets_with_nul(message: Message, defects: list[str]) -> None:
    """A charset named with a NUL makes the standard library's codec lookup raise ValueError, where its
    ``get_payload`` of 8-bit text expects LookupError: the name is dropped, and the part read as one
    that declares none (``decode_text`` takes such a name as unknown, for the routes that reach it)."""
    for part in message.walk():
        if "\x00" in collapse_rfc2231_value(part.get_param("charset") or ""):
            part.del_param("charset")
            defects.append("charset named with a NUL")


def _forwarded(message: Message, text: str, subject: str, embeds_message: bool) -> Original | None:
    """The original of a forward: attached whole, else inline below a separator; looked for only in a
    mail that says it is a forward (its subject) or carries a message."""
    if embeds_message:
        original = forwards.attached(message)
        if original is not None:
            texts, htmls, files = _walk_bodies(original.walk(), [])
            own_texts, own_htmls, _own_files = _walk_bodies(_own_parts(message), [])
            found = forwards.from_attached(original, _body(texts, htmls)[0], _body(own_texts, own_htmls)[0],
                                           frozenset(file.sha256 for file in files))
            if found is not None:
                return found
    if forwards.FORWARD_SUBJECT.match(subject):
        return forwards.inline(text, subject)
    return None


def parse(raw: bytes) -> ParsedMail:
    """Parse one message; never raises on malformed input (what was wrong is in ``defects``)."""
    defects: list[str] = []
    problem = _structure_problem(raw)
    if problem is None:
        message = email.message_from_bytes(raw, policy=POLICY)
        _drop_charsets_with_nul(message, defects)
        texts, htmls, attachments = _walk_bodies(message.walk(), defects)
    else:  # the headers, and the body as one text
        message = BytesParser(policy=POLICY).parsebytes(raw, headersonly=True)
        _drop_charsets_with_nul(message, defects)
        defects.append(problem)
        body = message.get_payload()
        texts, htmls, attachments = [body.encode("ascii", "surrogateescape").decode("utf-8", "replace")
                                     if isinstance(body, str) else ""], [], []
    embeds_message = False
    for part in message.walk():
        defects.extend(type(d).__name__ for d in part.defects)
        embeds_message = embeds_message or part.get_content_type() == "message/rfc822"
    senders = _addresses(message, "From")
    if not senders:
        defects.append("no From address")
    text, html = _body(texts, htmls)
    sender = senders[0] if senders else None
    subject = without_nul(decode_header_value(message.get("Subject")))
    return ParsedMail(
        sender=sender,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        subject=subject,
        message_id=next(iter(_message_ids(message.get("Message-ID"))), None),
        in_reply_to=next(iter(_message_ids(message.get("In-Reply-To"))), None),
        references=_message_ids(message.get("References")),
        date=_date(message, defects),
        text=text,
        reply_text=extract_reply(text, html),
        html=html,
        attachments=attachments,
        classification=classify(message, sender.address if sender else None),
        embeds_message=embeds_message,
        own_reply_text=_own_reply_text(message) if embeds_message and problem is None else None,
        forwarded=_forwarded(message, text, subject, embeds_message),
        sender_unambiguous=_unambiguous(message, sender),
        authentication_results=tuple(message.get_all("Authentication-Results", [])),
        suppresses_auto_response=suppresses_auto_response(message),
        defects=defects,
    )


def dedupe_key(parsed: ParsedMail, raw: bytes) -> str:
    """The Message-ID, or the SHA-256 of the message without the trace headers relays add."""
    if parsed.message_id:
        return parsed.message_id
    header_end = raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.find(b"\n\n")
    head, body = (raw[:header_end], raw[header_end:]) if header_end >= 0 else (raw, b"")
    return "sha256:" + hashlib.sha256(_TRACE_HEADERS.sub(b"", head) + body).hexdigest()
