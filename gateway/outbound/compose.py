"""One outgoing mail as bytes: headers that keep threads intact and robots quiet (CONTRACT §8)."""

from __future__ import annotations

from datetime import UTC
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

from gateway.models import Request, utcnow
from gateway.outbound.render import RenderedMail
from gateway.settings import Settings


def new_message_id(settings: Settings) -> str:
    return make_msgid(domain=settings.domain)


def compose(settings: Settings, request: Request, *, recipient: str, reply_to: str, rendered: RenderedMail,
            message_id: str, auto_submitted: str = "auto-generated") -> bytes:
    """A text + HTML mail to one recipient, whose Reply-To is that recipient's own reply address."""
    mail = EmailMessage(policy=SMTP)
    mail["From"] = formataddr((settings.site_name, request.mailbox))
    mail["To"] = recipient
    mail["Reply-To"] = reply_to
    mail["Subject"] = f"[#{request.id}] {rendered.subject}"
    mail["Message-ID"] = message_id
    mail["Date"] = format_datetime(utcnow().replace(tzinfo=UTC))
    if request.root_message_id:
        mail["In-Reply-To"] = request.root_message_id
        mail["References"] = request.root_message_id
    mail["Auto-Submitted"] = auto_submitted
    mail["X-Auto-Response-Suppress"] = "All"
    mail["X-Gateway-Request"] = str(request.id)
    mail.set_content(rendered.text)
    mail.add_alternative(rendered.html, subtype="html")
    return mail.as_bytes()
