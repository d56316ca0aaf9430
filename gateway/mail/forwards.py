"""A forwarded mail, read back: who wrote the original, its subject, its text and files, and the words
the forwarder wrote above it.

Two shapes, as mail clients write them:

- the original attached whole (``message/rfc822``: Outlook's "forward as attachment", Thunderbird's
  default for some setups, every client for a mail dragged into a new one);
- inline: a separator line (Gmail's ``---------- Forwarded message ---------`` or
  ``Message transféré``, Outlook's rule of underscores or ``-----Original Message-----``, Apple Mail's
  ``Begin forwarded message:`` / ``Début du message réexpédié :``, Thunderbird's
  ``-------- Forwarded Message --------``), then a block of ``From:``/``De :``, ``Subject:``/``Objet :``,
  ``Date:``/``Envoyé :``, ``To:``/``À :`` lines, then the original text.

Pure parsing: whether the forward is acted on (who forwarded it, whether their mail was authenticated)
is the pipeline's to decide (``pipeline.apply.open_forwarded``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from gateway.addresses import is_addr_spec
from gateway.mail.headers import decode_header_value

FORWARD_SUBJECT = re.compile(r"^\s*(?:(?:fwd?|tr|wg|rv|enc|i)\s*:\s*)+", re.I)

_SEPARATOR = re.compile(
    r"^[ \t>]*(?:-{2,}\s*(?:forwarded message|message transf[ée]r[ée]|original message|message d'origine|"
    r"mensaje reenviado|weitergeleitete nachricht)\s*-{2,}"
    r"|begin forwarded message\s*:|d[ée]but du message (?:r[ée]exp[ée]di[ée]|transf[ée]r[ée])\s*:"
    r"|_{10,80})[ \t]*$", re.I)
_HEADER = re.compile(r"^[ \t>]*(from|de|von|sent|envoy[ée]|date|subject|objet|sujet|betreff|to|[àa]|an|cc)"
                     r"[ \t]*:[ \t]*(.*)$", re.I)
_ADDRESS = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_FIELDS = {"from": "from", "de": "from", "von": "from", "subject": "subject", "objet": "subject",
           "sujet": "subject", "betreff": "subject"}
# What a mail client writes, bounded: a header line is at most 998 characters (RFC 5322), a header
# block a few lines, and a forward has its separator among the first lines that are one. Past these,
# a hostile body only costs its length once.
_LINE = 998
_BLOCK_LINES = 20
_SEPARATORS_TRIED = 5


@dataclass(frozen=True)
class Original:
    """The forwarded mail: its author's address and name, its subject and text; ``note``: the
    forwarder's own words above it."""

    address: str
    name: str
    subject: str
    text: str
    note: str
    attached: bool  # the original came whole, as a message/rfc822 part
    # The sha256 of each file the original came with, when it came whole: the mail's other files are the
    # forwarder's own. Inline, a forward's files cannot be told apart, and all are the original's.
    files: frozenset[str] | None = None


def _sender(value: str) -> tuple[str, str] | None:
    """``Jean Dupont <jean@client.example>``, ``Jean Dupont [mailto:jean@client.example]``, or an address."""
    value = value[:_LINE]
    found = _ADDRESS.search(value) if "@" in value else None
    if found is None or not is_addr_spec(found.group(0)):
        return None
    name = re.sub(r"mailto:\s*$", "", value[:found.start()].rstrip()).rstrip(" \t<[(\"'").strip().strip("\"'")
    return found.group(0).lower(), name[:200]


def inline(text: str, outer_subject: str) -> Original | None:
    """The original of an inline forward in ``text``, or None when none of the first separators is
    followed by a header block that names a sender. The text is walked once, line by line."""
    lines = text.split("\n")
    tried = 0
    for at, line in enumerate(lines):
        if len(line) > _LINE or not _SEPARATOR.match(line):
            continue
        tried += 1
        if tried > _SEPARATORS_TRIED:
            return None
        found = _header_block(lines, at + 1)
        if found is None:
            continue
        fields, body_at = found
        sender = _sender(fields.get("from", ""))
        if sender is None:
            continue
        body = "\n".join(line[2:] if line.startswith("> ") else line for line in lines[body_at:]).strip()
        subject = fields.get("subject") or FORWARD_SUBJECT.sub("", outer_subject)
        return Original(sender[0], sender[1], subject.strip()[:_LINE], body, "\n".join(lines[:at]).strip(), False)
    return None


def _header_block(lines: list[str], start: int) -> tuple[dict[str, str], int] | None:
    """The ``From:``/``Subject:`` lines after a separator (blank lines before them skipped, folded lines
    kept), and the index of the body's first line; None when no header line comes first."""
    fields: dict[str, str] = {}
    index, end = start, min(len(lines), start + _BLOCK_LINES)
    while index < end:
        line = lines[index][:_LINE]
        match = _HEADER.match(line)
        if match is not None:
            key = _FIELDS.get(match.group(1).lower())
            if key and key not in fields:
                fields[key] = match.group(2).strip()
        elif line.strip() == "":
            if fields:
                return fields, index + 1
        elif not (fields and line.startswith((" ", "\t"))):  # a folded header line goes on
            break
        index += 1
    return (fields, index) if fields else None


def attached(message: Message) -> Message | None:
    """The first ``message/rfc822`` part of a message: an original forwarded as an attachment."""
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
    return None


def from_attached(original: Message, original_text: str, own_text: str, files: frozenset[str]) -> Original | None:
    """The original forwarded whole; ``original_text``: its text, ``own_text``: the text of the forward's
    own parts, the forwarder's note; ``files``: the sha256 of the original's files."""
    sender = _sender(decode_header_value(original.get("From")))
    if sender is None:
        return None
    return Original(sender[0], sender[1], decode_header_value(original.get("Subject")).strip(),
                    original_text.strip(), own_text.strip(), True, files)
