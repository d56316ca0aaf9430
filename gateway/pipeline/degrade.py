"""A message the pipeline could not apply still reaches a person: it is kept *degraded*.

When applying a message raises anything but a fault of the gateway itself (``GATEWAY_FAULTS``:
the database or the disk gone, which leave the message ``failed`` for ``gateway replay --failed``),
the message's own transaction is rolled back and it is kept again in a new one that asks as little
as can be of it: what could be read becomes a private comment, flagged ``degraded`` with the
reason, on the request its reply token (or References, or subject tag) names, else on a new
request with its sender as the customer. The raw message is attached to the comment and the
coordinators are told. Nobody else is mailed: the customer's acknowledgment, the rules and the
commands are what could not be trusted to run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from gateway.addresses import is_addr_spec
from gateway.attachments import keep_attachments
from gateway.clock import utcnow
from gateway.context import Context
from gateway.helpdesk import Author, add_comment, join, open_request, upsert_person
from gateway.mail.parse import Attachment, ParsedMail, dedupe_key, parse, without_nul
from gateway.models import AppliedMessage, Inbound, MessageRef, Request
from gateway.notify import Mailer, tell_team
from gateway.orders.card import ensure_order
from gateway.pipeline.thread import find_thread
from gateway.settings import Settings

# The gateway's own faults: the message is not to blame, and is applied again once they are mended.
GATEWAY_FAULTS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError, OSError)
NO_SENDER = "unknown-sender@invalid"  # RFC 2606: an address no mail is ever delivered to
_HEADER_LINE = re.compile(rb"^(from|subject):[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)
_REASON_LENGTH = 500


@dataclass(frozen=True)
class Salvaged:
    """What could be read of a message the pipeline could not apply."""

    sender: str
    name: str
    subject: str
    text: str
    message_id: str | None
    key: str
    parsed: ParsedMail | None


@dataclass
class Degraded:
    """The outcome of keeping a message degraded, for ``process``'s log line and the inbound row."""

    decision: str
    request_id: int
    message_id: str | None
    outbox_ids: list[int]


def salvage(raw: bytes, envelope_from: str) -> Salvaged:
    """The parsed message when parsing works (``parse`` already cuts what it reads to fit the columns);
    else the From and Subject lines and the rest as text."""
    try:
        parsed: ParsedMail | None = parse(raw)
    except Exception:  # what broke the pipeline may be the parser itself
        parsed = None
    if parsed is not None:
        sender = parsed.sender.address if parsed.sender else ""
        name = parsed.sender.name if parsed.sender else ""
        subject, text, message_id = parsed.subject, parsed.text, parsed.message_id
        key = dedupe_key(parsed, raw)
    else:
        head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        lines = {m.group(1).lower(): m.group(2).decode("utf-8", "replace") for m in _HEADER_LINE.finditer(head)}
        sender = next((a.strip().lower() for _name, a in getaddresses([lines.get(b"from", "")])
                       if is_addr_spec(a.strip())), "")
        name, message_id, key = "", None, "sha256:" + hashlib.sha256(raw).hexdigest()
        subject = without_nul(" ".join(lines.get(b"subject", "").split()))
        text = without_nul(body.decode("utf-8", "replace"))
    envelope_sender = envelope_from.strip().lower() if is_addr_spec(envelope_from.strip()) else ""
    return Salvaged(sender or envelope_sender or NO_SENDER, name, subject, text, message_id, key, parsed)


def keep_degraded(context: Context, inbound_id: int, raw: bytes, reason: str) -> Degraded | None:
    """Keep a message that could not be applied; None when it was kept before (a replay)."""
    settings = context.settings
    with context.sessions() as session:
        row = session.get(Inbound, inbound_id)
        assert row is not None  # processing read it
        mail = salvage(raw, row.envelope_from)
        session.add(AppliedMessage(mailbox=row.mailbox, key=mail.key, inbound_id=inbound_id))
        try:
            session.flush()
        except IntegrityError:
            return None
        mailer = Mailer(session, settings)
        request, author = _where(session, settings, row, mail, raw)
        reason = reason[:_REASON_LENGTH]
        comment = add_comment(session, request, author, mail.text.strip(), visibility="private",
                              inbound_id=inbound_id)
        comment.degraded = reason
        keep_attachments(settings.data_dir, comment, [Attachment(
            filename=f"message-{inbound_id}.eml", content_type="message/rfc822", payload=raw,
            sha256=hashlib.sha256(raw).hexdigest())])
        if mail.message_id and session.scalar(select(MessageRef.id).where(MessageRef.message_id == mail.message_id)
                                              ) is None:
            session.add(MessageRef(request=request, message_id=mail.message_id))
        tell_team(mailer, request, "degraded", {"comment": comment, "reason": reason, "message": inbound_id},
                  exclude=author.email)
        session.flush()
        decision = f"degraded: private comment on #{request.id} by {author.email} ({reason})"
        row.status, row.decision, row.processed_at = "degraded", decision, utcnow()
        row.request_id, row.message_id = request.id, mail.message_id
        if row.quiet:  # imported history, even broken: recorded, never sent
            mailer.quiet(0, mailer.written)
        mailer.write_outbox()
        session.commit()
        return Degraded(decision, request.id, mail.message_id, mailer.outbox_ids)


def _where(session: Session, settings: Settings, row: Inbound, mail: Salvaged, raw: bytes) -> tuple[Request, Author]:
    """The request the message is threaded to, as the pipeline threads it, else a new one."""
    if mail.parsed is not None:
        try:
            with session.begin_nested():
                thread = find_thread(session, mail.parsed, raw, row.recipients, settings)
        except Exception:  # threading is what failed: a request of its own
            thread = None
        if thread is not None and thread.request is not None and thread.author is not None:
            author = thread.author
            if author.participant is None and not author.unverified:
                author = Author(author.email, author.role,
                                join(session, thread.request, author.email, role=author.role))
            return thread.request, author
    mailbox = settings.mailbox_for(row.mailbox) or settings.first_helpdesk() or settings.mailboxes[0]
    person = upsert_person(session, mail.sender, name=mail.name or None, name_from_mail=True)
    request, requester = open_request(session, mailbox, mail.subject, person, mail.message_id)
    if request.kind == "order":
        ensure_order(session, request, settings)
    return request, Author(mail.sender, "requester", requester)
