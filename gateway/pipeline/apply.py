"""What one parsed message does to the state: a new request, a comment with its commands,
an event for a robot, a failing address for a bounce (an event for a delay), or the inbox for ``#list``.

Runs inside the processing transaction; returns the decision for the log line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.addresses import takes_no_reply
from gateway.appends import append
from gateway.attachments import keep_attachments, travelling
from gateway.change import RequestChange
from gateway.clock import utcnow
from gateway.commands.dispatch import apply_commands, implemented
from gateway.commands.grammar import BadCommand, Command, check_commands, split_commands
from gateway.commands.registry import CommandError, lookup_problems, text_left
from gateway.helpdesk import (
    Author,
    add_comment,
    automatic_opened_since,
    find_person,
    join,
    mark_automatic,
    open_request,
    record_event,
    remember_visibility,
    requests_opened_since,
    upsert_person,
)
from gateway.mail.bounces import DELAYED, FAILED, Delivery
from gateway.mail.classify import BULK
from gateway.mail.parse import Attachment
from gateway.models import MessageRef, Outbox, Person, Request
from gateway.notify import notify_comment, notify_new_request, tell_team
from gateway.orders.card import ensure_order
from gateway.orders.mail import order_context, order_link
from gateway.orders.review_window import comment_visibility
from gateway.outbound.compose import new_message_id
from gateway.pipeline.message import CommandsRefused, Incoming, Known
from gateway.pipeline.questions import answer, bare_question
from gateway.pipeline.thread import REFERENCES_READ, find_thread, is_authenticated, requests_named
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


def look_up(session: Session, batch: list[Incoming]) -> Known:
    """What the batch's messages look up, read with one query each for the whole batch (``Known``):
    looked up one message at a time, each query would first flush what the messages before it
    changed. (A Message-ID that two messages of the batch share fails the claim of the second one,
    so no message adds a reference that another one looks up.)"""
    people: dict[str, Person | None] = dict.fromkeys(i.sender.lower() for i in batch if i.sender)
    people.update((p.email, p) for p in session.scalars(select(Person).where(Person.email.in_(people))))
    own = {i.parsed.message_id for i in batch if i.parsed.message_id}
    named = {m for i in batch for m in (i.parsed.in_reply_to, *i.parsed.references[-REFERENCES_READ:]) if m}
    stored = list(session.scalars(select(MessageRef).where(MessageRef.message_id.in_(own | named)))) \
        if own or named else []
    threads = requests_named(session, {ref.message_id: ref.request_id for ref in stored if ref.message_id in named})
    known = Known(people, {ref.message_id: ref for ref in stored if ref.message_id in own}, threads, frozenset(own))
    for incoming in batch:
        incoming.known = known
    return known


# Each step of applying a message, in ``STEPS``' order: it looks at the message and at what the steps
# before it found (``Incoming``), and returns the decision that ends the message's way, or None to go on.


def ignore_our_own(incoming: Incoming) -> str | None:
    """A mail the gateway sent, come back (a loop through an alias): nothing to do."""
    parsed = incoming.parsed
    incoming.known = incoming.known or look_up(incoming.session, [incoming])
    incoming.seen = incoming.known.refs.get(parsed.message_id) if parsed.message_id else None
    return "our own message came back: ignored" if incoming.seen is not None and incoming.seen.outgoing else None


class Ownerless(ValueError):
    """A message from no one: a fact of the message, not a fault of the gateway (no traceback to log)."""


def require_sender(incoming: Incoming) -> None:
    """A message from no one has no owner to give: the pipeline keeps it degraded (``degrade``)."""
    if not incoming.sender:
        raise Ownerless("the message has no sender address")


def thread(incoming: Incoming) -> None:
    """The request it belongs to and its author's rights (``thread.find_thread``); the request's
    waiting mails (a digest) are held while it is applied."""
    parsed, known = incoming.parsed, incoming.known
    assert known is not None
    # a reply to a message of its own batch: its request is read now, as that message left it
    answers_the_batch = not known.batch.isdisjoint((parsed.in_reply_to, *parsed.references))
    incoming.thread = find_thread(incoming.session, parsed, incoming.raw, incoming.envelope_to, incoming.settings,
                                  None if answers_the_batch else known.threads)
    if incoming.thread.request is not None:
        incoming.mailer.write_waiting(incoming.thread.request)


def delivery_report(incoming: Incoming) -> str | None:
    """A report that our mail failed or is delayed: the addresses that failed for good are marked
    failing and the team is told; a delay, or a failure that may pass, is only an event on the request
    the mail was about (a server still trying says nothing against the address). A report that quotes
    none of our mails is about no mail of ours, and may be a customer's words taken for one: it goes
    on, to be shown as any automatic mail is (``robot``)."""
    delivery = incoming.parsed.classification.delivery
    if delivery is None or delivery.kind not in (FAILED, DELAYED):
        return None
    ours = _our_message_ids(incoming.raw, incoming.settings.domain)
    return _apply_delivery_report(incoming, delivery, ours) if ours else None


def robot(incoming: Incoming) -> str | None:
    """An automatic mail (an out-of-office, a list) on a request: an event on it, never an answer. With no
    request it goes on and opens one, not acknowledged (``open_new``): a mail no one is shown is lost,
    and a customer's mail is sometimes taken for a robot's ("Absente du 3 au 10 : livrez après")."""
    parsed, thread = incoming.parsed, incoming.threaded
    request = thread.request
    if parsed.auto is None or request is None:
        return None
    if _written_by_its_token(incoming):
        record_event(request, "looked automatic", f"{parsed.auto} ({parsed.classification.reason}), but written "
                                                  f"with {incoming.sender}'s own reply token: kept as a comment")
        return None
    record_event(request, parsed.auto, f"{incoming.sender}: {parsed.subject}")
    incoming.row.request_id = request.id
    return f"{parsed.auto} ({parsed.classification.reason}) recorded on #{request.id}, not answered"


def _written_by_its_token(incoming: Incoming) -> bool:
    """A reply with its author's own token that only looks automatic: by its subject or its sender's name
    (``Classification.guessed``), or by the headers of a list it came through (a firm's group address),
    not by what an auto-responder declares (``Auto-Submitted``, ``X-Autoreply``, a report)."""
    thread, classification = incoming.threaded, incoming.parsed.classification
    return (thread.via == "token" and thread.author is not None and not thread.author.unverified
            and (classification.guessed or classification.auto == BULK))


def sender_account(incoming: Incoming) -> None:
    """The sender's account, made if need be; a person who writes is no longer failing."""
    parsed = incoming.parsed
    incoming.mailer.read_ahead(incoming.threaded.request)
    assert incoming.known is not None
    incoming.person = upsert_person(incoming.session, incoming.sender,
                                    name=parsed.sender.name if parsed.sender else None,
                                    people=incoming.known.people, name_from_mail=True)
    if incoming.person.failing_since is not None:
        incoming.person.failing_since = None


def ask(incoming: Incoming) -> str | None:
    """``#help``, ``#list`` or ``#show NUMBER`` to the bare mailbox address: answered by mail to the asker's own
    address (never to a robot: an auto-reply quoting a ``#list`` is no one asking)."""
    if (incoming.threaded.request is not None or incoming.parsed.auto is not None
            or incoming.parsed.forwarded is not None):  # a forward's commands are the forwarder's note's
        return None
    question = bare_question(incoming, incoming.account)
    return None if question is None else answer(incoming, incoming.account, question)


def open_forwarded(incoming: Incoming) -> Opened | None:
    """A coordinator forwarded a customer's mail to the mailbox: the request is the customer's. Its
    opening comment is the original, the coordinator's words above it a note whose ``#commands`` apply;
    the customer hears nothing until a coordinator answers publicly. A forward its From's MTA did not
    vouch for is opened all the same, flagged unverified, and its commands are plain text."""
    original, parsed = incoming.parsed.forwarded, incoming.parsed
    if (incoming.threaded.request is not None or original is None or incoming.parsed.auto is not None
            or incoming.account.role != "coordinator"
            or original.address == incoming.sender or incoming.settings.is_own_address(original.address)):
        return None
    known = find_person(incoming.session, original.address)
    if known is not None and known.role != "customer":  # a colleague's mail forwarded: no customer's request
        return None
    verified = is_authenticated(parsed, incoming.raw, incoming.settings)
    commands, rest = split_commands(original.note) if verified else ([], original.note)
    _refuse_bad_lines(incoming.session, commands, "coordinator", incoming.sender, None)
    assert incoming.known is not None
    customer = upsert_person(incoming.session, original.address, name=original.name or None,
                             people=incoming.known.people, name_from_mail=True)
    theirs = [file for file in parsed.attachments if original.files is None or file.sha256 in original.files]
    opened = _open(incoming, customer, incoming.seen, subject=original.subject or parsed.subject,
                   text=original.text, attachments=theirs, acknowledge=False, unverified=not verified,
                   cc_observers=False,
                   # only a forward its From's server vouched for is said to be theirs, with their words
                   forwarded={"forwarded_by": incoming.sender, "forward_note": rest} if verified else None)
    request, session = opened.request, incoming.session
    forwarder = Author(incoming.sender, "coordinator",
                       join(session, request, incoming.sender, role="coordinator", person=incoming.account),
                       unverified=not verified)
    own = [file for file in parsed.attachments if file not in theirs]  # the forwarder's files: the team's
    note = add_comment(session, request, forwarder, (rest or "(files)") if own else rest,
                       visibility="private" if forwarder.unverified else "note",
                       inbound_id=incoming.row.id) if rest or own else None
    if note is not None:
        keep_attachments(incoming.settings.data_dir, note, own)
    record_event(request, "forwarded", f"{original.address}'s mail forwarded by {incoming.sender}"
                                       + ("" if verified else " (not authenticated: unverified)"))
    _apply_commands(RequestChange(session, incoming.settings, incoming.mailer, request, forwarder, note, rest),
                    commands)
    return Opened(request, f"{original.address} (forwarded by {incoming.sender})")


def open_new(incoming: Incoming) -> Opened | None:
    """No request named: a new one, acknowledged, its rules run, the coordinators told.

    A From that names no one for certain (``ParsedMail.sender_unambiguous``: read one way here, another
    by the mail servers that checked it) opens it all the same, flagged unverified, as an unauthenticated
    forward is: the customer it names hears nothing until a coordinator answers. An automatic mail opens
    it labelled (``helpdesk.AUTOMATIC``): no robot is answered (RFC 3834), the coordinators are told of
    the first few of the hour only (``_announced``), and its Cc make no observers."""
    if incoming.threaded.request is not None:
        return None
    parsed = incoming.parsed
    certain = parsed.sender_unambiguous
    automatic = f"{parsed.auto}: {parsed.classification.reason}" if parsed.auto else None
    opened = _open(incoming, incoming.account, incoming.seen, subject=parsed.subject, text=parsed.text.strip(),
                   attachments=parsed.attachments, acknowledge=certain, cc_observers=automatic is None,
                   unverified=not certain, automatic=automatic)
    if not certain:
        record_event(opened.request, "unverified", f"opened from an ambiguous From ({incoming.sender}): "
                                                   "another address may have sent it")
    return opened


def comment(incoming: Incoming) -> str:
    """A reply: its author joins the request if need be, then the comment, the rules, the ``#commands``."""
    request, author = incoming.threaded.request, incoming.threaded.author
    assert request is not None and author is not None
    if author.participant is None and not author.unverified:
        participant = join(incoming.session, request, incoming.sender, role=author.role, person=incoming.account)
        author = Author(author.email, author.role, participant)
    return _comment(incoming, request, author, incoming.threaded.via, incoming.seen)


STEPS: tuple[Callable[[Incoming], str | Opened | None], ...] = (
    ignore_our_own, require_sender, thread, delivery_report, robot, sender_account, ask, open_forwarded,
    open_new, comment)


def apply_message(incoming: Incoming) -> str | Opened:
    """The steps in turn, until one decides what the message did."""
    for step in STEPS:
        decision = step(incoming)
        if decision is not None:
            return decision
    raise AssertionError("the last step always decides")


def _open(incoming: Incoming, person: Person, seen: MessageRef | None, *, subject: str, text: str,
          attachments: Sequence[Attachment], acknowledge: bool, cc_observers: bool, unverified: bool = False,
          automatic: str | None = None, forwarded: dict[str, str] | None = None) -> Opened:
    """A new request whose customer is ``person`` (the sender, or the author of a forwarded mail),
    opened with ``text`` and ``attachments``; ``unverified``: kept private and flagged, as any unverified comment;
    ``automatic``: why the mail looks automatic, and the request is marked so before its rules run
    (``helpdesk.mark_automatic``), never acknowledged, and announced only within its limit
    (``_announced``); ``forwarded``: who forwarded the mail and their note, for the team's notice."""
    parsed, session, settings = incoming.parsed, incoming.session, incoming.settings
    sender = person.email
    # An automatic mail's request counts towards no flood (``helpdesk.requests_opened_since``).
    opened_before = 0 if automatic is not None else _opened_before(incoming, sender)
    announced = automatic is None or _announced(incoming)
    request, requester = open_request(session, incoming.mailbox, subject, person,
                                      parsed.message_id or new_message_id(incoming.settings))
    if automatic is not None:
        mark_automatic(request, automatic)
    order = ensure_order(session, request, incoming.settings) if request.kind == "order" else None
    author = Author(sender, "requester", requester, unverified=unverified)
    comment = add_comment(session, request, author, text, visibility="private" if unverified else "public",
                          inbound_id=incoming.row.id)
    keep_attachments(incoming.settings.data_dir, comment, attachments)
    _remember_message_id(incoming, request, seen)
    observers = _observers_from_cc(incoming, request) if (
        cc_observers and incoming.mailbox.cc_become_observers and parsed.sender_unambiguous) else []
    run_rules(RequestChange(session, incoming.settings, incoming.mailer, request, author, comment), "message",
              inbound_id=incoming.row.id)
    acknowledge = acknowledge and automatic is None and not (
        parsed.suppresses_auto_response or takes_no_reply(sender) or settings.is_own_address(sender))
    files = travelling(settings, comment)
    if announced:
        notify_new_request(incoming.mailer, request, comment, requester, acknowledge=acknowledge,
                           defects=parsed.defects, opened_before=opened_before, observers=observers,
                           event="order_new" if order else "new_request",  # an order's notice names its commands
                           about={**(order_context(order) if order else {}), "source": "mail", "links": files.links,
                                  "order_link": order_link(settings, order) if order else "",
                                  "links_until": files.links_until, **(forwarded or {})}, files=files.files)
    incoming.row.request = request
    return Opened(request, sender)


OPENING_WINDOW = timedelta(hours=1)  # the requests a sender opened within it count towards a flood


def _opened_before(incoming: Incoming, email: str) -> int:
    """How many requests ``email`` opened in the last hour before the one opened now, which is counted
    for the messages after it (``Known.opened``). Read once for every sender of the batch, at its first
    new request, and for any other address (a forwarded mail's customer) when first met: no request was
    opened for an address before it is read, so what is stored is its whole count then."""
    known = incoming.known
    assert known is not None  # ``ignore_our_own`` looked it up
    email = email.lower()
    if email not in known.opened:
        with incoming.session.no_autoflush:  # what the batch changed so far is not needed to count
            known.opened |= requests_opened_since(incoming.session, {email, *known.people} - known.opened.keys(),
                                                  utcnow() - OPENING_WINDOW)
    before = known.opened[email]
    known.opened[email] = before + 1
    return before


def _announced(incoming: Incoming) -> bool:
    """Whether the coordinators are told of a request an automatic mail opens: the first
    ``requests_per_sender_hour`` of a mailbox's hour are (a person's mail taken for a robot's is then seen,
    and the coordinators get its token), the rest of a wave of backscatter or of a list's posts, from as
    many senders, stay in the inbox alone."""
    known, mailbox = incoming.known, incoming.mailbox.address
    assert known is not None  # ``ignore_our_own`` looked it up
    if mailbox not in known.automatic_opened:
        with incoming.session.no_autoflush:  # what the batch changed so far is not needed to count
            known.automatic_opened[mailbox] = automatic_opened_since(incoming.session, mailbox,
                                                                     utcnow() - OPENING_WINDOW)
    before = known.automatic_opened[mailbox]
    known.automatic_opened[mailbox] = before + 1
    return before < incoming.settings.requests_per_sender_hour


MAX_CC_OBSERVERS = 10  # a mail Cc'd to a crowd makes no crowd of observers: the first ten, and an event


def _observers_from_cc(incoming: Incoming, request: Request) -> list[str]:
    """The customer's colleagues in the Cc of their opening mail take part as mail-only observers of the
    customer's side, who see what the customer sees (public comments, never a team one): a reply to
    all from them is then a participant's. Not the gateway's own addresses, not the sender, not a
    coordinator (who is told anyway)."""
    team = {person.email for person in incoming.mailer.coordinators()}
    wanted = []
    for cc in incoming.parsed.cc:
        email = cc.address.lower()
        if (email and email != incoming.sender and email not in team and email not in wanted
                and not incoming.settings.is_own_address(email) and not takes_no_reply(email)):
            wanted.append(email)
    names = {cc.address.lower(): cc.name for cc in incoming.parsed.cc}
    for email in wanted[:MAX_CC_OBSERVERS]:
        join(incoming.session, request, email, role="observer", name=names[email], mail_only=True).customer_side = True
    if wanted:
        left_out = f"; {len(wanted) - MAX_CC_OBSERVERS} more left out" if len(wanted) > MAX_CC_OBSERVERS else ""
        record_event(request, "observer", f"{', '.join(wanted[:MAX_CC_OBSERVERS])} added from the Cc of "
                                          f"{incoming.sender}'s mail{left_out}")
    return wanted[:MAX_CC_OBSERVERS]


def _refuse_bad_lines(session: Session, commands: list[Command], role: str, author: str,
                      request: Request | None) -> None:
    """Every command line that is unknown, malformed, not allowed for ``role`` or names what does not
    exist, all at once: any of them and nothing of the mail applies (CONTRACT §5)."""
    bad = check_commands(commands, role, implemented())
    bad_lines = {b.line for b in bad}
    bad += lookup_problems(session, [c for c in commands if c.line not in bad_lines])
    if bad:
        raise CommandsRefused(author, request, bad)


def _apply_commands(change: RequestChange, commands: list[Command]) -> None:
    """The mail's commands in turn; one that its handler refuses is the whole mail's refusal."""
    try:
        apply_commands(change, commands)
    except CommandError as error:
        raise CommandsRefused(change.author.email, change.request, [BadCommand(error.line, error.reason)]) from error


def _comment(incoming: Incoming, request: Request, author: Author, via: str, seen: MessageRef | None) -> str:
    parsed, session = incoming.parsed, incoming.session
    commands, rest = split_commands(parsed.reply_text, parsed.own_reply_text)
    if author.unverified or author.role in ("requester", "unknown") or author.customer_side:
        commands, rest = [], parsed.reply_text
    _refuse_bad_lines(session, commands, author.role, author.email, request)
    explicit = next((c.name for c in reversed(commands) if c.name in ("private", "public")), None)
    visibility = "private" if author.unverified else (explicit or "public")
    if any(c.name == "note" for c in commands):
        note = next(c for c in commands if c.name == "note")
        visibility, rest = "note", "\n\n".join(part for part in (note.args, rest) if part)
    _remember_message_id(incoming, request, seen)
    # No secret vouched for it: a stranger's, or the customer's threaded by subject tag or References
    # (CONTRACT §4.3), which anyone who knows their address and the request's number can write.
    secretless = author.unverified or (via != "token" and author.role == "requester")
    if not rest and not commands and not parsed.attachments:  # nothing read (an empty part, broken base64)
        rest = f"(no text could be read: the mail is kept as message {incoming.row.id})"
    comment = None
    rules = RequestChange(session, incoming.settings, incoming.mailer, request, author)
    left = text_left(commands, rest)
    if left is not None and (left or parsed.attachments):  # a photo alone is a reply too
        kept_as = comment_visibility(session, incoming.settings, incoming.mailer, request, author, visibility,
                                     secretless=secretless)
        comment = add_comment(session, request, author, left, visibility=kept_as, inbound_id=incoming.row.id)
        keep_attachments(incoming.settings.data_dir, comment, parsed.attachments)
        rules.comment = comment
        run_rules(rules, "comment", inbound_id=incoming.row.id, explicit_visibility=explicit is not None)
        # Neither a stranger posing as the team, nor the customer's side, nor a reply held for the review
        # window changes the team's habit.
        if not author.unverified and not author.customer_side and kept_as == visibility:
            remember_visibility(request, comment)
    status, assignee = request.status, request.assignee
    _apply_commands(RequestChange(session, incoming.settings, incoming.mailer, request, author, comment, rest,
                                  tuple(parsed.attachments)), commands)
    if author.role == "coordinator" and not author.unverified:
        request.unread = False  # a coordinator acted on it: read, until something new comes back (a decision)
    if request.status != status:
        run_rules(rules, "status", inbound_id=incoming.row.id, previous_status=status)
    if request.assignee is not assignee:
        run_rules(rules, "assignment", inbound_id=incoming.row.id)
    if comment is not None:
        files = travelling(incoming.settings, comment)
        order = ensure_order(session, request, incoming.settings) if request.kind == "order" else None
        notify_comment(incoming.mailer, request, comment, author, parsed.defects,
                       about={"links": files.links, "links_until": files.links_until,
                              "order_link": order_link(incoming.settings, order) if order else ""}, files=files.files,
                       secretless=secretless)
    incoming.row.request_id = request.id
    flag = " unverified sender" if author.unverified else ""
    done = f"{comment.visibility} comment" if comment is not None else "no comment"
    applied = f", commands {' '.join('#' + c.name for c in commands)}" if commands else ""
    return f"{done} on #{request.id} by {author.role} {author.email}{flag} (via {via}){applied}"


def _remember_message_id(incoming: Incoming, request: Request, seen: MessageRef | None) -> None:
    """Later mails that name this one in References thread to the request; ``seen``: it is stored already."""
    if incoming.parsed.message_id and seen is None:
        append(incoming.session, MessageRef, request, message_id=incoming.parsed.message_id)


def _our_message_ids(raw: bytes, domain: str) -> list[str]:
    """The Message-IDs on our domain that a report quotes (the returned mail's headers)."""
    text = raw.decode("utf-8", errors="replace")
    return [m.group(0) for m in _OUR_MESSAGE_ID.finditer(text) if m.group(1) == domain]


def _bounced_request(session: Session, ours: list[str]) -> Request | None:
    """The request of the mail that bounced: one of our Message-IDs quoted in the report."""
    if not ours:
        return None
    ref = session.scalars(select(MessageRef).where(MessageRef.message_id.in_(ours))).first()
    return session.get(Request, ref.request_id) if ref else None


def _quotes_our_mail_to(session: Session, ours: list[str], address: str) -> bool:
    """Whether a report quotes the Message-ID of a mail we sent to ``address``: what a real report of
    our mail carries, and a forged one ("stop mailing this customer") cannot guess."""
    return bool(ours) and session.scalar(
        select(Outbox.id).where(Outbox.recipient == address, Outbox.message_id.in_(ours)).limit(1)) is not None


def _apply_delivery_report(incoming: Incoming, delivery: Delivery, ours: list[str]) -> str:
    session = incoming.session
    request = _bounced_request(session, ours)
    if request is not None:
        incoming.row.request_id = request.id
    told: list[str] = []
    for recipient in delivery.recipients:
        if recipient.permanent and not _quotes_our_mail_to(session, ours, recipient.address):
            told.append(f"{recipient.address} failed for good, not marked: the report quotes none of our mails "
                        "to it")
        elif recipient.permanent:
            person = find_person(session, recipient.address)
            if person is not None and person.failing_since is None:
                person.failing_since = utcnow()
            told.append(f"{recipient.address} failing")
            if request is not None:
                record_event(request, "bounce", f"{recipient.address} {recipient.status} {recipient.diagnostic}")
                tell_team(incoming.mailer, request, "bounce", {"address": recipient.address,
                                                                "status": recipient.status,
                                                                "diagnostic": recipient.diagnostic})
        elif recipient.action in (FAILED, DELAYED):
            told.append(f"{recipient.address} {recipient.action} {recipient.status}".rstrip())
            if request is not None:
                record_event(request, f"delivery {recipient.action}",
                             f"{recipient.address} {recipient.status} {recipient.diagnostic}".strip())
    about = f" for request #{request.id}" if request else ""
    return f"delivery report, {delivery.kind} ({', '.join(told) or 'no recipient named'}){about}"
