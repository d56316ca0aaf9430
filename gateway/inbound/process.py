"""Processing one stored message: parse, classify, thread, apply, notify, in one transaction.

The step is idempotent: the ``applied_messages`` unique index lets a message change
state once per mailbox, so ``replay`` and a restart after a crash are always safe.
Mail goes out only after the commit (the caller enqueues the returned outbox ids).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.commands import check_commands, split_commands
from gateway.context import Context
from gateway.helpdesk import (
    Author,
    add_comment,
    apply_automatic_effects,
    default_visibility,
    join,
    open_request,
    record_event,
    upsert_person,
)
from gateway.inbound.accept import read_raw
from gateway.inbound.attachments import keep_attachments
from gateway.inbound.parse import ParsedMail, parse
from gateway.inbound.thread import find_thread
from gateway.models import AppliedMessage, Inbound, MessageRef, Request, utcnow
from gateway.outbound.compose import new_message_id
from gateway.outbound.notify import Mailer, notify_comment, notify_new_request, tell_team

log = logging.getLogger("gateway.inbound")

_TRACE_HEADERS = re.compile(rb"^(received|return-path|delivered-to|x-original-to)\s*:.*?(?=^\S|\Z)",
                            re.I | re.M | re.S)
_OUR_MESSAGE_ID = re.compile(r"<[^<>\s]+@([^<>\s]+)>")
# Commands this version applies; the others are recognised but answered as unknown.
IMPLEMENTED_COMMANDS = frozenset({"private", "public"})


@dataclass
class Outcome:
    """What processing decided, for the log line and ``inbound.decision``."""

    status: str  # processed, duplicate, failed
    decision: str
    request_id: int | None = None
    message_id: str | None = None
    outbox_ids: list[int] = field(default_factory=list)


def dedupe_key(parsed: ParsedMail, raw: bytes) -> str:
    """The Message-ID, or the SHA-256 of the message without the trace headers relays add."""
    if parsed.message_id:
        return parsed.message_id
    header_end = raw.find(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.find(b"\n\n")
    head, body = (raw[:header_end], raw[header_end:]) if header_end >= 0 else (raw, b"")
    return "sha256:" + hashlib.sha256(_TRACE_HEADERS.sub(b"", head) + body).hexdigest()


def _our_returning_message(session: Session, parsed: ParsedMail) -> bool:
    if not parsed.message_id:
        return False
    ref = session.scalars(select(MessageRef).where(MessageRef.message_id == parsed.message_id)).first()
    return ref is not None and ref.outgoing


def _bounced_request(session: Session, parsed: ParsedMail, domain: str) -> Request | None:
    """The request of the mail that bounced: one of our Message-IDs quoted in the report."""
    ours = [m.group(0) for m in _OUR_MESSAGE_ID.finditer(parsed.message.as_string()) if m.group(1) == domain]
    if not ours:
        return None
    ref = session.scalars(select(MessageRef).where(MessageRef.message_id.in_(ours))).first()
    return session.get(Request, ref.request_id) if ref else None


def _apply_bounce(context: Context, session: Session, mailer: Mailer, parsed: ParsedMail) -> str:
    from gateway.helpdesk import find_person

    request = _bounced_request(session, parsed, context.settings.domain)
    failed = [r for r in parsed.classification.failed_recipients if r.status.startswith("5")]
    for recipient in failed:
        person = find_person(session, recipient.address)
        if person is not None and person.failing_since is None:
            person.failing_since = utcnow()
        if request is not None:
            record_event(request, "bounce", f"{recipient.address} {recipient.status} {recipient.diagnostic}")
            tell_team(mailer, request, "bounce", {"address": recipient.address, "status": recipient.status,
                                                   "diagnostic": recipient.diagnostic})
    addresses = ", ".join(r.address for r in failed) or "no permanent failure"
    return f"delivery report ({addresses})" + (f" for request #{request.id}" if request else "")


def _apply_message(context: Context, session: Session, row: Inbound, parsed: ParsedMail, mailer: Mailer) -> str:
    settings = context.settings
    mailbox = settings.mailbox_for(row.mailbox) or settings.first_helpdesk()
    if mailbox is None:
        raise ValueError(f"no mailbox for {row.mailbox}")
    sender = parsed.sender.address if parsed.sender else row.envelope_from.lower()
    if not sender:
        raise ValueError("the message has no sender address")
    envelope_to = list(json.loads(row.envelope_to or "[]"))
    thread = find_thread(session, parsed, envelope_to, settings.secret_key)

    if parsed.auto is not None:
        if parsed.auto == "bounce":
            return _apply_bounce(context, session, mailer, parsed)
        if thread.request is not None:
            record_event(thread.request, parsed.auto, f"{sender}: {parsed.subject}")
            row.request_id = thread.request.id
            return f"{parsed.auto} ({parsed.classification.reason}) recorded on #{thread.request.id}, not answered"
        return f"{parsed.auto} ({parsed.classification.reason}) with no request: kept, not answered"

    person = upsert_person(session, sender, name=parsed.sender.name if parsed.sender else None)
    person.failing_since = None
    if thread.request is None:
        request, requester = open_request(session, mailbox, parsed.subject, person,
                                          parsed.message_id or new_message_id(settings))
        author = Author(sender, "requester", requester)
        comment = add_comment(session, request, author, parsed.text.strip(), visibility="public",
                              inbound_id=row.id)
        keep_attachments(settings.data_dir, comment, parsed.attachments)
        _remember_message_id(session, parsed, request)
        row.request_id = request.id
        notify_new_request(mailer, request, comment, requester, acknowledge=True, defects=parsed.defects)
        return f"new request #{request.id} from {sender}"

    request = thread.request
    assert thread.author is not None
    author = thread.author
    if author.participant is None and not author.unverified:
        author = Author(author.email, author.role, join(session, request, sender, role=author.role, person=person))
    commands, rest = split_commands(parsed.reply_text)
    if author.unverified or author.role in ("requester", "unknown"):
        commands, rest = [], parsed.reply_text
    bad = check_commands(commands, author.role, IMPLEMENTED_COMMANDS)
    if bad:
        record_event(request, "commands-refused", "; ".join(f"{b.line}: {b.reason}" for b in bad))
        return f"commands refused on #{request.id} from {sender}: " + "; ".join(b.reason for b in bad)
    visibility = default_visibility(request, author)
    for command in commands:
        if command.name in ("private", "public") and not author.unverified:
            visibility = command.name
    row.request_id = request.id
    _remember_message_id(session, parsed, request)
    if not rest:
        return f"commands only on #{request.id} from {sender} (via {thread.via}): no comment"
    comment = add_comment(session, request, author, rest, visibility=visibility, inbound_id=row.id)
    keep_attachments(settings.data_dir, comment, parsed.attachments)
    apply_automatic_effects(request, author, visibility)
    notify_comment(mailer, request, comment, author, parsed.defects)
    flag = " unverified sender" if author.unverified else ""
    return f"{visibility} comment on #{request.id} by {author.role} {sender}{flag} (via {thread.via})"


def _remember_message_id(session: Session, parsed: ParsedMail, request: Request) -> None:
    if parsed.message_id and session.scalars(
            select(MessageRef.id).where(MessageRef.message_id == parsed.message_id)).first() is None:
        session.add(MessageRef(message_id=parsed.message_id, request_id=request.id))


def process(context: Context, inbound_id: int) -> Outcome:
    """Apply one stored message once; safe to call again for the same id."""
    with context.sessions() as session:
        row = session.get(Inbound, inbound_id)
        if row is None:
            return Outcome("failed", f"no stored message {inbound_id}")
        if row.status in ("processed", "duplicate"):
            return Outcome(row.status, row.decision, row.request_id, row.message_id)
        raw = read_raw(context, row)
        parsed = parse(raw)
        key = dedupe_key(parsed, raw)
        row.message_id = parsed.message_id
        mailbox_address = (context.settings.mailbox_for(row.mailbox) or context.settings.first_helpdesk())
        session.add(AppliedMessage(mailbox=mailbox_address.address if mailbox_address else row.mailbox,
                                   key=key, inbound_id=row.id))
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            return _finish(context, inbound_id, Outcome("duplicate", f"already applied ({key})",
                                                        message_id=parsed.message_id))
        mailer = Mailer(session, context.settings)
        if _our_returning_message(session, parsed):
            decision = "our own message came back: ignored"
        else:
            decision = _apply_message(context, session, row, parsed, mailer)
        if parsed.defects:
            decision += f" [defects: {', '.join(sorted(set(parsed.defects)))}]"
        row.status, row.decision, row.processed_at = "processed", decision, utcnow()
        session.commit()
        return Outcome("processed", decision, row.request_id, parsed.message_id, mailer.outbox_ids)


def _finish(context: Context, inbound_id: int, outcome: Outcome) -> Outcome:
    with context.sessions.begin() as session:
        row = session.get(Inbound, inbound_id)
        if row is not None:
            row.status, row.decision, row.processed_at = outcome.status, outcome.decision, utcnow()
    return outcome


def process_safely(context: Context, inbound_id: int) -> Outcome:
    """``process``, but a message that breaks the pipeline is marked failed and kept for ``gateway replay``."""
    try:
        outcome = process(context, inbound_id)
    except Exception as error:  # one message must never stop the others
        log.exception("message %s failed: %s (kept; run `gateway replay %s`)", inbound_id, error, inbound_id)
        return _finish(context, inbound_id, Outcome("failed", f"{type(error).__name__}: {error}"))
    log.info("message %s %s: %s: %s", inbound_id, outcome.message_id or "(no Message-ID)", outcome.status,
             outcome.decision)
    return outcome
