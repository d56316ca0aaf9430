"""What one parsed message does to the state: a new request, a comment with its commands,
an event for a robot, a failing address for a bounce, or the inbox for ``#list``.

Runs inside the processing transaction; returns the decision for the log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.addresses import takes_no_reply
from gateway.appends import append
from gateway.attachments import keep_attachments
from gateway.change import RequestChange
from gateway.clock import utcnow
from gateway.commands.dispatch import apply_commands, implemented
from gateway.commands.grammar import BadCommand, check_commands, split_commands
from gateway.commands.registry import CommandError, lookup_problems, text_is_taken
from gateway.helpdesk import (
    Author,
    add_comment,
    find_person,
    join,
    open_request,
    record_event,
    remember_visibility,
    requests_opened_by,
    upsert_person,
)
from gateway.mail.parse import ParsedMail
from gateway.models import MessageRef, Person, Request
from gateway.notify import notify_comment, notify_new_request, tell_team
from gateway.orders.card import ensure_order
from gateway.orders.review_window import comment_visibility
from gateway.outbound.compose import new_message_id
from gateway.pipeline.listing import answer_list, is_list_command
from gateway.pipeline.message import Incoming, Known
from gateway.pipeline.thread import find_thread
from gateway.rules.engine import run_rules

_OUR_MESSAGE_ID = re.compile(r"<[^<>\s]+@([^<>\s]+)>")


@dataclass(frozen=True)
class Opened:
    """The decision on a message that opened a request, told once the transaction has flushed: the
    request gets its number then (see ``notify``: nothing flushes a new request before)."""

    request: Request
    sender: str

    def __str__(self) -> str:
        return f"new {self.request.kind} request #{self.request.id} from {self.sender}"


class CommandsRefused(Exception):
    """Some command lines of the mail are bad: nothing of the mail may apply."""

    def __init__(self, author: str, request: Request | None, bad: list[BadCommand]) -> None:
        super().__init__("; ".join(f"{b.line}: {b.reason}" for b in bad))
        self.author = author
        self.request_id = request.id if request else None
        self.bad = bad


def look_up(session: Session, batch: list[Incoming]) -> Known:
    """The messages' senders' accounts and their own Message-IDs stored before, read with one query
    each for the whole batch: looked up one message at a time, each query would first flush what
    the messages before it changed. (A Message-ID that two messages of the batch share fails the
    claim of the second one, so no message adds a reference that another one looks up.)"""
    people: dict[str, Person | None] = dict.fromkeys(i.sender.lower() for i in batch if i.sender)
    people.update((p.email, p) for p in session.scalars(select(Person).where(Person.email.in_(people))))
    wanted = {i.parsed.message_id for i in batch if i.parsed.message_id}
    refs = {ref.message_id: ref for ref in session.scalars(
        select(MessageRef).where(MessageRef.message_id.in_(wanted)))} if wanted else {}
    known = Known(people, refs)
    for incoming in batch:
        incoming.known = known
    return known


def apply_message(incoming: Incoming) -> str | Opened:
    parsed = incoming.parsed
    known = incoming.known or look_up(incoming.session, [incoming])
    seen = known.refs.get(parsed.message_id) if parsed.message_id else None
    if seen is not None and seen.outgoing:
        return "our own message came back: ignored"
    if not incoming.sender:
        raise ValueError("the message has no sender address")
    thread = find_thread(incoming.session, parsed, incoming.raw, incoming.envelope_to, incoming.settings)
    if thread.request is not None:
        incoming.mailer.write_waiting(thread.request)
    if parsed.auto == "bounce":
        return _apply_bounce(incoming)
    if parsed.auto is not None:
        if thread.request is None:
            return f"{parsed.auto} ({parsed.classification.reason}) with no request: kept, not answered"
        record_event(thread.request, parsed.auto, f"{incoming.sender}: {parsed.subject}")
        incoming.row.request_id = thread.request.id
        return f"{parsed.auto} ({parsed.classification.reason}) recorded on #{thread.request.id}, not answered"
    incoming.mailer.read_ahead(thread.request)
    person = upsert_person(incoming.session, incoming.sender, name=parsed.sender.name if parsed.sender else None,
                           people=known.people)
    if person.failing_since is not None:
        person.failing_since = None
    if thread.request is None:
        if is_list_command(incoming, person):
            return answer_list(incoming, person)
        return _open(incoming, person, seen)
    assert thread.author is not None
    author = thread.author
    if author.participant is None and not author.unverified:
        participant = join(incoming.session, thread.request, incoming.sender, role=author.role, person=person)
        author = Author(author.email, author.role, participant)
    return _comment(incoming, thread.request, author, thread.via, seen)


def _open(incoming: Incoming, person: Person, seen: MessageRef | None) -> Opened:
    parsed, session, sender, settings = incoming.parsed, incoming.session, incoming.sender, incoming.settings
    opened_before = requests_opened_by(session, sender, utcnow() - timedelta(hours=1))
    request, requester = open_request(session, incoming.mailbox, parsed.subject, person,
                                      parsed.message_id or new_message_id(incoming.settings))
    if request.kind == "order":
        ensure_order(session, request, incoming.settings)
    author = Author(incoming.sender, "requester", requester)
    comment = add_comment(session, request, author, parsed.text.strip(), visibility="public",
                          inbound_id=incoming.row.id)
    keep_attachments(incoming.settings.data_dir, comment, parsed.attachments)
    _remember_message_id(session, parsed, request, seen)
    run_rules(RequestChange(session, incoming.settings, incoming.mailer, request, author, comment), "message",
              inbound_id=incoming.row.id)
    acknowledge = not (parsed.suppresses_auto_response or takes_no_reply(sender) or settings.is_own_address(sender))
    notify_new_request(incoming.mailer, request, comment, requester, acknowledge=acknowledge, defects=parsed.defects,
                       opened_before=opened_before)
    incoming.row.request = request
    return Opened(request, incoming.sender)


def _comment(incoming: Incoming, request: Request, author: Author, via: str, seen: MessageRef | None) -> str:
    parsed, session = incoming.parsed, incoming.session
    commands, rest = split_commands(parsed.reply_text)
    if author.unverified or author.role in ("requester", "unknown"):
        commands, rest = [], parsed.reply_text
    bad = check_commands(commands, author.role, implemented())
    bad_lines = {b.line for b in bad}
    bad += lookup_problems(session, [c for c in commands if c.line not in bad_lines])
    if bad:
        raise CommandsRefused(author.email, request, bad)
    explicit = next((c.name for c in reversed(commands) if c.name in ("private", "public")), None)
    visibility = "private" if author.unverified else (explicit or "public")
    if any(c.name == "note" for c in commands):
        note = next(c for c in commands if c.name == "note")
        visibility, rest = "note", "\n\n".join(part for part in (note.args, rest) if part)
    _remember_message_id(session, parsed, request, seen)
    comment = None
    rules = RequestChange(session, incoming.settings, incoming.mailer, request, author)
    if rest and not text_is_taken(commands, rest):
        kept_as = comment_visibility(session, incoming.settings, incoming.mailer, request, author, visibility)
        comment = add_comment(session, request, author, rest, visibility=kept_as, inbound_id=incoming.row.id)
        keep_attachments(incoming.settings.data_dir, comment, parsed.attachments)
        rules.comment = comment
        run_rules(rules, "comment", inbound_id=incoming.row.id, explicit_visibility=explicit is not None)
        if not author.unverified and kept_as == visibility:  # neither a stranger posing as the team nor a
            remember_visibility(request, comment)          # reply held for the review window changes the habit
    status, assignee = request.status, request.assignee
    try:
        apply_commands(RequestChange(session, incoming.settings, incoming.mailer, request, author, comment, rest,
                                      tuple(parsed.attachments)), commands)
    except CommandError as error:
        raise CommandsRefused(author.email, request, [BadCommand(error.line, error.reason)]) from error
    if request.status != status:
        run_rules(rules, "status", inbound_id=incoming.row.id, previous_status=status)
    if request.assignee is not assignee:
        run_rules(rules, "assignment", inbound_id=incoming.row.id)
    if comment is not None:
        notify_comment(incoming.mailer, request, comment, author, parsed.defects)
    incoming.row.request_id = request.id
    flag = " unverified sender" if author.unverified else ""
    done = f"{comment.visibility} comment" if comment is not None else "no comment"
    applied = f", commands {' '.join('#' + c.name for c in commands)}" if commands else ""
    return f"{done} on #{request.id} by {author.role} {author.email}{flag} (via {via}){applied}"


def _remember_message_id(session: Session, parsed: ParsedMail, request: Request, seen: MessageRef | None) -> None:
    """Later mails that name this one in References thread to the request; ``seen``: it is stored already."""
    if parsed.message_id and seen is None:
        append(session, MessageRef, request, message_id=parsed.message_id)


def _bounced_request(session: Session, raw: bytes, domain: str) -> Request | None:
    """The request of the mail that bounced: one of our Message-IDs quoted in the report."""
    text = raw.decode("utf-8", errors="replace")
    ours = [m.group(0) for m in _OUR_MESSAGE_ID.finditer(text) if m.group(1) == domain]
    if not ours:
        return None
    ref = session.scalars(select(MessageRef).where(MessageRef.message_id.in_(ours))).first()
    return session.get(Request, ref.request_id) if ref else None


def _apply_bounce(incoming: Incoming) -> str:
    session = incoming.session
    request = _bounced_request(session, incoming.raw, incoming.settings.domain)
    failed = [r for r in incoming.parsed.classification.failed_recipients if r.status.startswith("5")]
    for recipient in failed:
        person = find_person(session, recipient.address)
        if person is not None and person.failing_since is None:
            person.failing_since = utcnow()
        if request is not None:
            record_event(request, "bounce", f"{recipient.address} {recipient.status} {recipient.diagnostic}")
            tell_team(incoming.mailer, request, "bounce", {"address": recipient.address, "status": recipient.status,
                                                            "diagnostic": recipient.diagnostic})
    addresses = ", ".join(r.address for r in failed) or "no permanent failure"
    return f"delivery report ({addresses})" + (f" for request #{request.id}" if request else "")
