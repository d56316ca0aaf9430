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

from gateway.mail.headers import decode_header_value

FORWARD_SUBJECT = re.compile(r"^\s*(?:(?:fwd?|tr|wg|rv|enc|i)\s*:\s*)+", re.I)

_SEPARATOR = re.compile(
    r"^[ \t>]*(?:-{2,}\s*(?:forwarded message|message transf[ée]r[ée]|original message|message d'origine|"
    r"forwarded message|mensaje reenviado|weitergeleitete nachricht)\s*-{2,}"
    r"|begin forwarded message\s*:|d[ée]but du message (?:r[ée]exp[ée]di[ée]|transf[ée]r[ée])\s*:"
    r"|_{10,})[ \t]*$", re.I | re.M)
_HEADER = re.compile(r"^[ \t>]*(from|de|von|sent|envoy[ée]|date|subject|objet|sujet|betreff|to|[àa]|an|cc)"
                     r"[ \t]*:[ \t]*(.*)$", re.I)
_ADDRESS = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_FIELDS = {"from": "from", "de": "from", "von": "from", "subject": "subject", "objet": "subject",
           "sujet": "subject", "betreff": "subject"}


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


def _sender(value: str) -> tuple[str, str] | None:
    """``Jean Dupont <jean@client.example>``, ``Jean Dupont [mailto:jean@client.example]``, or an address."""
    found = _ADDRESS.search(value)
    if found is None:
        return None
    name = re.sub(r"mailto:\s*$", "", value[:found.start()].rstrip()).rstrip(" \t<[(\"'").strip().strip("\"'")
    return found.group(0).lower(), name


def inline(text: str, outer_subject: str) -> Original | None:
    """The original of an inline forward in ``text``, or None when there is no separator followed by
    a header block that names a sender."""
    for separator in _SEPARATOR.finditer(text):
        lines = text[separator.end():].lstrip("\n").split("\n")
        fields: dict[str, str] = {}
        index = 0
        while index < len(lines):
            match = _HEADER.match(lines[index])
            if match is None:
                if fields and lines[index].strip() == "":
                    index += 1
                    break
                if fields and lines[index].startswith((" ", "\t")):  # a folded header line
                    index += 1
                    continue
                if not fields and lines[index].strip() == "":
                    index += 1
                    continue
                break
            key = _FIELDS.get(match.group(1).lower())
            if key and key not in fields:
                fields[key] = match.group(2).strip()
            index += 1
        sender = _sender(fields.get("from", ""))
        if sender is None:
            continue
        body = "\n".join(line[2:] if line.startswith("> ") else line for line in lines[index:]).strip()
        subject = fields.get("subject") or FORWARD_SUBJECT.sub("", outer_subject)
        return Original(sender[0], sender[1], subject.strip(), body, text[:separator.start()].strip(), False)
    return None


def attached(message: Message) -> Message | None:
    """The first ``message/rfc822`` part of a message: an original forwarded as an attachment."""
    for part in message.walk():
        if part.get_content_type() == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
    return None


def from_attached(original: Message, original_text: str, outer_text: str) -> Original | None:
    """The original forwarded whole; ``original_text``: its text, ``outer_text``: the whole mail's, whose
    part before the original's text is the forwarder's note."""
    sender = _sender(decode_header_value(original.get("From")))
    if sender is None:
        return None
    note = outer_text.split(original_text, 1)[0] if original_text and original_text in outer_text else ""
    return Original(sender[0], sender[1], decode_header_value(original.get("Subject")).strip(),
                    original_text.strip(), note.strip(), True)
