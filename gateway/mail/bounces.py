"""Delivery reports: which recipients failed, with which codes.

Standard reports (RFC 3464) carry a ``message/delivery-status`` part whose
fields name each recipient, its ``Action`` and ``Status``; they are read field
by field. Many servers (Exim, qmail, Gmail, old Exchange, Yahoo...) still send
plain text instead; from those the failing addresses and SMTP codes are read
by general patterns (an address opening a line, ``550 5.1.1`` after it), never
per server. Whether a message is a report at all is decided in ``classify``.

Pure functions: no database, no I/O.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from gateway.mail.html import html_to_text

FAILED, DELAYED = "failed", "delayed"
_SUCCESS_ACTIONS = ("delivered", "relayed", "expanded")


@dataclass(frozen=True)
class ReportedRecipient:
    """One recipient a delivery report names, and what became of the mail to it."""

    address: str  # lowercase email of the recipient, "" when the report does not say
    status: str  # enhanced status code like "5.1.1", or "" if unknown
    reply_code: str  # SMTP reply code like "550", or ""
    diagnostic: str  # the diagnostic text, trimmed (may be "")
    action: str = FAILED  # failed, delayed, delivered, relayed or expanded (RFC 3464 ``Action``)

    @property
    def permanent(self) -> bool:
        """Failed for good: the server gave up, with a permanent code (5.x.x). Only this says that the
        address itself fails; a 4.x.x failure (a full mailbox, retries that ran out) returned the mail
        without saying so, and a delay is still being tried."""
        return self.action == FAILED and self.status.startswith("5")

    def as_json(self) -> dict[str, object]:
        return {"address": self.address, "status": self.status, "action": self.action,
                "diagnostic": self.diagnostic, "permanent": self.permanent}


@dataclass(frozen=True)
class Delivery:
    """What a delivery report says happened to a mail (``gateway parse --json``: ``delivery``)."""

    recipients: tuple[ReportedRecipient, ...]
    reporting_mta: str = ""  # the server that wrote the report, when it says
    kind_when_empty: str = FAILED  # a report that names no recipient: what its words said

    @property
    def kind(self) -> str:
        """``failed`` when any recipient failed, else ``delayed`` when any is delayed, else the
        success the recipients share (``delivered``, ``relayed``, ``expanded``)."""
        actions = [recipient.action for recipient in self.recipients]
        for kind in (FAILED, DELAYED, *_SUCCESS_ACTIONS):
            if kind in actions:
                return kind
        return self.kind_when_empty

    @property
    def failed(self) -> tuple[ReportedRecipient, ...]:
        return tuple(recipient for recipient in self.recipients if recipient.action == FAILED)

    def as_json(self) -> dict[str, object]:
        return {"kind": self.kind, "recipients": [recipient.as_json() for recipient in self.recipients],
                "reporting_mta": self.reporting_mta or None}


# An enhanced status code (RFC 3463), not part of an IP address or a version number.
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
# An SMTP reply code where servers print one: at the start of a reply, before an
# enhanced code, or after "said:" / "code" / "error".
_REPLY_CODE = re.compile(
    r"(?:^|[\s:;(\[\"'])([245][0-5]\d)(?=[- ][245]\.\d|[-\s]|$)"
)
_REPLY_THEN_STATUS = re.compile(r"(?<![\d.])([245][0-5]\d)[ -]+[#('\"]?([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")
_REPORTING_MTA = re.compile(r"^Reporting-MTA:[ \t]*(?:[\w-]+[ \t]*;[ \t]*(?=\S)|(?![\w-]+[ \t]*;))([^\s;]+)",
                            re.I | re.M)

# Where the copy of the original message starts in a plain-text bounce: a
# separator line naming it, a short line naming it, or its first header.
_ORIGINAL_WORDS = (
    r"(?:below\s+this\s+line|copy\s+of\s+(?:the|your)\s+message|original\s+message|returned\s+message|"
    r"message\s+follows|unsent\s+message|headers?\s+of\s+(?:the\s+|your\s+)?(?:original\s+)?message|"
    r"original\s+(?:mail|headers))"
)
_ORIGINAL_MARKER = re.compile(
    rf"^[ \t>]*[-=*_]{{2,}}.*{_ORIGINAL_WORDS}.*$|^[ \t]*.{{0,25}}{_ORIGINAL_WORDS}.{{0,25}}$"
    r"|^(?:Return-Path|Received|Message-ID|DKIM-Signature|X-Received):",
    re.I | re.M,
)


def part_text(part: Message) -> str:
    """The decoded text of one part (a DSN part parsed into field blocks is joined back)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # compat32 parses message/delivery-status into one Message per field block.
        body = "\n".join(block.as_string() for block in payload if isinstance(block, Message))
        if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
            try:
                return base64.b64decode(body).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                return body
        return body
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return str(payload) if isinstance(payload, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def report_parts(msg: Message) -> Iterator[Message]:
    """Every part written by the reporting server, not descending into the returned message.

    A report that some gateway wrapped as an attachment is still a report, so
    an attached ``multipart/report`` is walked too.
    """
    yield msg
    payload = msg.get_payload()
    if msg.get_content_type() == "message/rfc822":
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message) and inner.get_content_type() == "multipart/report":
            yield from report_parts(inner)
        return
    if msg.get_content_maintype() != "multipart" or not isinstance(payload, list):
        return
    for child in payload:
        if isinstance(child, Message):
            yield from report_parts(child)


def report_text(msg: Message) -> str:
    """The human-readable text the reporting server wrote (plain text preferred, else HTML)."""
    plain: list[str] = []
    html: list[Message] = []
    for part in report_parts(msg):
        payload = part.get_payload()
        if part.get_content_type() == "text/plain" and not part.get_filename():
            plain.append(part_text(part))
        elif part.get_content_type() == "text/html" and not part.get_filename():
            html.append(part)
        elif part.get_content_maintype() == "multipart" and isinstance(payload, str):
            plain.append(payload)  # compat32 found no boundary: the raw body is the best text there is
    if plain:
        return "\n".join(plain)
    return "\n".join(html_to_text(part_text(part)) for part in html)


# --- RFC 3464 fields -------------------------------------------------------------------


def _fields(text: str) -> list[tuple[str, str]]:
    """``Name: value`` fields in order, continuation lines joined."""
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and fields and line.strip():
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
            continue
        match = _FIELD.match(line)
        if match:
            fields.append((match.group(1).lower(), match.group(2).strip()))
    return fields


def _recipient_blocks(text: str) -> list[dict[str, str]]:
    """One dict per recipient: its field block, split again where a block names several.

    Blank lines separate the blocks (RFC 3464), but some servers list several
    recipients in one block, so a second Final-Recipient (or Original-Recipient)
    starts a new recipient too.
    """
    recipients: list[dict[str, str]] = []
    for block in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")):
        current: dict[str, str] = {}
        for name, value in _fields(block):
            if name in ("final-recipient", "original-recipient") and name in current:
                recipients.append(current)
                current = {}
            current.setdefault(name, value)
        recipients.append(current)
    return [r for r in recipients if "final-recipient" in r or "original-recipient" in r]


def _address_of(value: str) -> str:
    """``rfc822; <User@Example.org>`` -> ``user@example.org``."""
    match = _ADDRESS.search(value.split(";", 1)[-1]) or _ADDRESS.search(value)
    return match.group(0).lower() if match else ""


def _status_in(text: str) -> str:
    match = _STATUS.search(text)
    return ".".join(match.groups()) if match else ""


def _reply_code_in(text: str) -> str:
    match = _REPLY_CODE.search(text)
    return match.group(1) if match else ""


def _recipient(address: str, status: str, diagnostic: str, action: str = FAILED) -> ReportedRecipient:
    """One recipient, with the most telling codes its report gives.

    The remote server's own answer, quoted in the diagnostic as ``550 5.7.1 ...``
    (the last refusal when a report quotes several replies: a transcript's
    ``250 2.1.0 Ok`` lines are what went well), says more than the Status field,
    which the reporting server often fills with its own generic code (``4.4.7``
    expired, ``5.0.0``). Without one, a bare ``X.0.0`` Status gives way to any
    code in the diagnostic, and a reply code alone gives ``X.0.0``.
    """
    diagnostic = " ".join(diagnostic.split())
    quoted = _REPLY_THEN_STATUS.findall(diagnostic)
    refusals = [(reply, code) for reply, code in quoted if not reply.startswith("2")]
    if refusals or quoted:
        reply_code, status = (refusals or quoted)[-1]
        return ReportedRecipient(address, status, reply_code, diagnostic, action)
    reply_code = _reply_code_in(diagnostic)
    from_text = _status_in(diagnostic)
    if from_text and (not status or status.endswith(".0.0")):
        status = from_text
    if not status and reply_code:
        status = f"{reply_code[0]}.0.0"
    return ReportedRecipient(address, status, reply_code, diagnostic, action)


def delivery_report(msg: Message, *, text: str | None = None) -> Delivery | None:
    """What an RFC 3464 report says of each recipient, from its ``message/delivery-status`` parts;
    None when the message has no such fields.

    Servers that write the same fields into a text part instead are read too (``text``: the
    message's ``report_text``, when the caller has it already).
    """
    texts = [part_text(p) for p in report_parts(msg) if p.get_content_type() == "message/delivery-status"]
    if not texts:
        written = report_text(msg) if text is None else text
        texts = [written] if re.search(r"^Final-Recipient:", written, re.I | re.M) else []
    blocks = [block for text in texts for block in _recipient_blocks(text)]
    if not blocks:
        return None
    recipients: list[ReportedRecipient] = []
    for block in blocks:
        action = block.get("action", "").split()[0].lower() if block.get("action", "").split() else ""
        status = _status_in(block.get("status", ""))
        if action not in (FAILED, DELAYED, *_SUCCESS_ACTIONS):
            action = "delivered" if status.startswith("2.") else FAILED  # no Action, or one no RFC names
        address = _address_of(block.get("final-recipient", "")) or _address_of(
            block.get("original-recipient", "")
        )
        diagnostic = block.get("diagnostic-code", "")
        diagnostic = diagnostic.split(";", 1)[1] if re.match(r"^\s*[\w-]+\s*;", diagnostic) else diagnostic
        recipient = _recipient(address, status, diagnostic, action)
        recipients.append(recipient if action in _SUCCESS_ACTIONS else _completed(recipient, msg))
    mta = next((match.group(1).lower() for text in texts for match in [_REPORTING_MTA.search(text)] if match), "")
    return Delivery(tuple(recipients), mta)


def _completed(recipient: ReportedRecipient, msg: Message) -> ReportedRecipient:
    """A recipient whose fields give only a generic code, completed from the report's text.

    Some servers (OpenSMTPD) write ``Status: 5.0.0`` with no diagnostic and put
    the remote server's answer on the recipient's line of the text part.
    """
    if recipient.reply_code or not recipient.address or not recipient.status.endswith(".0.0"):
        return recipient
    lines = failure_section(report_text(msg)).splitlines()
    for index, line in enumerate(lines):
        if recipient.address in line.lower():
            for paragraph in (line, " ".join(lines[index : index + 3])):
                found = _recipient(recipient.address, "", paragraph, recipient.action)
                if found.reply_code or found.status:
                    return found
    return recipient


# --- Amazon SES notifications (JSON, sent through SNS) ----------------------------------


_SES_TYPE = re.compile(r'"notificationType"\s*:\s*"(\w+)"')
_SES_RECIPIENT = re.compile(r'\{[^{}]*"emailAddress"\s*:\s*"[^"]+"[^{}]*\}')


def _json_string(name: str, text: str) -> str:
    match = re.search(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    return match.group(1) if match else ""


def ses_notification(msg: Message, *, text: str | None = None) -> tuple[str, tuple[ReportedRecipient, ...]] | None:
    """``(notificationType, bounced recipients)`` of an Amazon SES notification mail, or None.

    Read by patterns rather than ``json.loads``: SNS folds long lines of the
    JSON, which leaves it invalid as delivered. ``text``: the message's ``report_text``,
    when the caller has it already.
    """
    text = report_text(msg) if text is None else text
    kind = _SES_TYPE.search(text)
    if kind is None:
        return None
    bounced = text.split('"bouncedRecipients"', 1)[1] if '"bouncedRecipients"' in text else ""
    bounced = bounced.split("]", 1)[0]
    failed = tuple(
        _recipient(
            _json_string("emailAddress", item).lower(),
            _status_in(_json_string("status", item)),
            _json_string("diagnosticCode", item).split(";", 1)[-1],
        )
        for item in _SES_RECIPIENT.findall(bounced)
    )
    return kind.group(1), failed


# --- Plain-text reports ---------------------------------------------------------------


def failure_section(text: str) -> str:
    """The server's own words: the text before the copy of the original message."""
    for match in _ORIGINAL_MARKER.finditer(text):
        if match.start() > 0:
            return text[: match.start()]
    return text


_RECIPIENT_LINE = re.compile(
    r"^(?!(?:mail\s+)?from\s*:)"  # the sender, in a transcript's MAIL FROM
    r"(?:(?:in:|>>>)\s*(?=rcpt\s+to))?"  # a transcript's command line (Postfix "In:", sendmail ">>>")
    r"(?:(?:to|recipient|address|final-recipient|original-recipient|rcpt\s+to|destinataire|empf[äa]nger)"
    r"\s*:?\s*(?:rfc822\s*;)?\s*)?[\"'<(]*(\S+@[^\s<>\"']+)",
    re.I,
)


def _recipient_line(line: str, own: set[str]) -> str | None:
    """The address a line opens with, when the line is about one recipient."""
    match = _RECIPIENT_LINE.match(line.strip().strip("*").strip())
    if not match:
        return None
    address = _address_of(match.group(1))
    if not address or address in own:
        return None
    return address


def plain_report_recipients(msg: Message, sender: str | None, action: str = FAILED) -> tuple[ReportedRecipient, ...]:
    """The recipients a plain-text report names, read by general patterns, each given ``action``.

    Each line that starts with an address opens that recipient's paragraph; its
    status and reply codes are the first found in the paragraph (or, when there
    is one recipient, anywhere in the report). Without such a line, the report's
    codes are given to the original message's recipient.
    """
    section = failure_section(report_text(msg))
    own = {a.lower() for _, a in getaddresses([str(v) for v in msg.get_all("From", [])]) if a}
    if sender:
        own.add(sender.lower())
    # the report is addressed to us: an address on our domain is ours or one of our Message-IDs
    ours = {a.lower().rpartition("@")[2] for _, a in getaddresses([str(v) for v in msg.get_all("To", [])]) if a}
    lines = section.splitlines()
    starts = [(i, a) for i, line in enumerate(lines) for a in [_recipient_line(line, own)] if a]
    # the same address repeated on the following lines belongs to one paragraph
    starts = [s for k, s in enumerate(starts) if k == 0 or s[1] != starts[k - 1][1]]
    recipients: list[ReportedRecipient] = []
    seen: set[str] = set()
    for k, (index, address) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(lines)
        paragraph = "\n".join(lines[index:end])
        if address in seen:
            continue
        seen.add(address)
        recipients.append(_recipient(address, "", paragraph, action))
    if len(recipients) == 1 and not recipients[0].status:
        only = recipients[0]
        recipients[0] = _recipient(only.address, "", section, action)
    if not recipients:
        address = _original_recipient(msg) or _only_address(section, own, ours)
        if address or _STATUS.search(section) or _REPLY_CODE.search(section):
            recipients.append(_recipient(address, "", section, action))
    return tuple(recipients)


def _only_address(section: str, own: set[str], our_domains: set[str]) -> str:
    """The one address a report's words name inside a sentence ("delivering your message to
    bob@example.net"), other than the report's own and those on our domain (a mailbox of ours, one of
    our Message-IDs); "" when none or several."""
    named = {address.lower() for address in _ADDRESS.findall(section)} - own
    named = {address for address in named if address.rpartition("@")[2] not in our_domains}
    return named.pop() if len(named) == 1 else ""


def _original_recipient(msg: Message) -> str:
    """The To of the returned message, when the report carries it."""
    for part in report_parts(msg):
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                for _, address in getaddresses([str(v) for v in inner[0].get_all("To", [])]):
                    if "@" in address:
                        return address.lower()
    match = re.search(r"^To:\s*(.*)$", report_text(msg), re.M | re.I)
    return _address_of(match.group(1)) if match else ""
