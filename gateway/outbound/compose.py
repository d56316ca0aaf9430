"""One outgoing mail as bytes: headers that keep threads intact and robots quiet (CONTRACT §8)."""

from __future__ import annotations

import email
from datetime import UTC
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

from gateway.models import utcnow
from gateway.outbound.render import RenderedMail
from gateway.settings import Settings


def new_message_id(settings: Settings) -> str:
    return make_msgid(domain=settings.domain)


def compose(settings: Settings, *, mailbox: str, recipient: str, reply_to: str, rendered: RenderedMail,
            message_id: str, number: int | None = None, root_message_id: str | None = None,
            auto_submitted: str = "auto-generated", original: bytes | None = None) -> bytes:
    """A text + HTML mail to one recipient, whose Reply-To is that recipient's own reply address.

    ``number`` tags the subject ``[#N]``; ``root_message_id`` chains the mail to the request's
    first message so every client threads it; ``original`` is attached as ``message/rfc822``.
    """
    mail = EmailMessage(policy=SMTP)
    mail["From"] = formataddr((settings.site_name, mailbox))
    mail["To"] = recipient
    mail["Reply-To"] = reply_to
    mail["Subject"] = f"[#{number}] {rendered.subject}" if number is not None else rendered.subject
    mail["Message-ID"] = message_id
    mail["Date"] = format_datetime(utcnow().replace(tzinfo=UTC))
    if root_message_id:
        mail["In-Reply-To"] = root_message_id
        mail["References"] = root_message_id
    mail["Auto-Submitted"] = auto_submitted
    mail["X-Auto-Response-Suppress"] = "All"
    if number is not None:
        mail["X-Gateway-Request"] = str(number)
    mail.set_content(rendered.text)
    mail.add_alternative(rendered.html, subtype="html")
    if original is not None:
        embedded = email.message_from_bytes(original, policy=SMTP)
        mail.add_attachment(embedded, disposition="attachment", filename="original.eml")
    return mail.as_bytes()
