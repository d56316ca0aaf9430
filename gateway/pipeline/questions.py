"""Questions sent to a bare mailbox address, answered by mail to the asker's own address only, so they need
no authentication (§4): ``#help``, the commands the asker may write; ``#list``, the open requests (a
supplier's or an observer's own), those waiting on the reader first; and a coordinator's ``#show NUMBER``,
the card of any request, from that request's address, so that the coordinator's reply to it is theirs on
that request (a request no one was told of, which an automatic mail opened past the hour's announced
ones, is taken up this way)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from gateway.clock import utcnow
from gateway.commands.grammar import GRAMMAR, BadCommand, Command, check_commands, split_commands
from gateway.commands.helpdesk import card_context, help_context, no_such_request, shown
from gateway.helpdesk import join, record_event
from gateway.models import Participant, Person, Request
from gateway.pipeline.message import Incoming

CLOSED = ("resolved", "declined", "completed", "cancelled")


LIST_TOPIC = "list"  # the outbox topic of the answers, counted for the hourly cap


def bare_question(incoming: Incoming, person: Person) -> list[Command] | None:
    """The mail's commands when its first is ``#list`` from a coordinator (the mailbox's inbox), or from a
    supplier or an observer (the requests they take part in), ``#show NUMBER`` from a coordinator, or
    ``#help`` from any of them. From anyone else, or anything else, it is the first line of a new request."""
    commands, _rest = split_commands(incoming.parsed.reply_text, incoming.parsed.own_reply_text)
    if not commands:
        return None
    first = commands[0]
    if first.name == "list" and (person.role == "coordinator" or _taking_part(incoming, person, limit=1)):
        return commands
    if first.name == "show" and person.role == "coordinator" and first.args:
        return commands
    if first.name == "help" and person.role in ("coordinator", "supplier", "observer"):
        return commands
    return None


def answer(incoming: Incoming, reader: Person, commands: list[Command]) -> str:
    """At most ``mails_per_hour`` answers an hour, error mails included: anyone can write a bare question in
    the reader's name, so nothing here may flood them. One question a mail; any other command at the bare
    address is refused, since it needs a request's mail to answer."""
    limit = incoming.settings.mails_per_hour
    question = commands[0]
    if incoming.mailer.recent(reader.email, topic=LIST_TOPIC) >= limit:
        return f"#{question.name} not answered to {reader.email}: {limit} answers in the last hour"
    # who may ask was decided above; this checks the words (a supplier's #list is a coordinator's line)
    bad = check_commands([question], "coordinator", frozenset(GRAMMAR))
    bad += [BadCommand(other.line, "only #help, #list or #show NUMBER at the mailbox's address: write this in "
                                   "a reply to the request's mail") for other in commands[1:]]
    if not bad and question.name == "show" and shown(incoming.session, question) is None:
        bad.append(BadCommand(question.line, no_such_request(question)))
    if bad:
        return _refuse(incoming, reader, bad)
    if question.name == "show":
        return _answer_show(incoming, reader, question)
    if question.name == "help":
        incoming.mailer.write("help", "sender", help_context(reader.role), mailbox=incoming.mailbox.address,
                              recipient=reader.email, reply_to=incoming.mailbox.address, person=reader,
                              auto_submitted="auto-replied", topic=LIST_TOPIC)
        return f"#help answered to {reader.email}"
    return _answer_list(incoming, reader, question.args.lower())


def _refuse(incoming: Incoming, reader: Person, bad: list[BadCommand]) -> str:
    """The error mail, in the answers' budget, and without the mail it answers: a stranger's words, copied
    into a mail from the shop's own address, would be a relay."""
    incoming.mailer.write("command_error", "sender", {"bad": bad, "subject": incoming.parsed.subject,
                                                      "original_attached": False},
                          mailbox=incoming.mailbox.address, recipient=reader.email, reply_to=incoming.mailbox.address,
                          person=reader, auto_submitted="auto-replied", topic=LIST_TOPIC)
    return f"commands at the mailbox's address refused, answered to {reader.email}: " + "; ".join(
        f"{b.line}: {b.reason}" for b in bad)


def _answer_show(incoming: Incoming, reader: Person, question: Command) -> str:
    request = shown(incoming.session, question)
    assert request is not None  # answer() refused a number that names none
    participant = join(incoming.session, request, reader.email, role="coordinator", person=reader)
    record_event(request, "card", f"card sent to {reader.email} (#show at {incoming.mailbox.address})")
    incoming.session.flush()  # the participant's id is in the token of the answer's Reply-To
    incoming.mailer.write("card", "sender", card_context(incoming.session, incoming.settings, request),
                          mailbox=request.mailbox, recipient=reader.email,
                          reply_to=incoming.mailer.reply_to(request, participant), person=reader, request=request,
                          auto_submitted="auto-replied", topic=LIST_TOPIC)
    return f"#show {request.id} answered to {reader.email}"


def _taking_part(incoming: Incoming, person: Person, limit: int | None = None) -> list[Request]:
    """The open requests of the mailbox where ``person`` is an active supplier or observer."""
    query = (select(Request).join(Participant)
             .where(Request.mailbox == incoming.mailbox.address, Request.status.not_in(CLOSED),
                    Participant.email == person.email, Participant.active.is_(True),
                    Participant.role.in_(("supplier", "observer")))
             .options(selectinload(Request.assignee), selectinload(Request.participants)).order_by(Request.id))
    return list(incoming.session.scalars(query.limit(limit) if limit else query))


def _waiting_on(reader: Person, request: Request) -> bool:
    if reader.role != "coordinator":
        return request.expected_response == "supplier" and any(
            p.email == reader.email and p.role == "supplier" for p in request.participants)
    return request.expected_response == "coordinator" and request.assignee_id in (None, reader.id)


def _answer_list(incoming: Incoming, reader: Person, status: str) -> str:
    if reader.role == "coordinator":
        query = (select(Request).options(selectinload(Request.assignee), selectinload(Request.participants))
                 .where(Request.mailbox == incoming.mailbox.address, Request.status.not_in(CLOSED)))
        requests = list(incoming.session.scalars(query.order_by(Request.id)))
    else:
        requests = _taking_part(incoming, reader)
    if status:
        requests = [r for r in requests if r.status == status]
    requests.sort(key=lambda r: (not _waiting_on(reader, r), r.id))
    now = utcnow()
    rows = [{"number": r.id, "subject": r.subject, "status": r.status,
             "requester": next((p.email for p in r.participants if p.role == "requester"), ""),
             "assignee": r.assignee.email if r.assignee else None, "expected": r.expected_response,
             "waiting_on_you": _waiting_on(reader, r), "age_days": (now - r.created_at).days,
             "age_hours": (now - r.created_at).seconds // 3600} for r in requests]
    incoming.mailer.write("list", "coordinator", {"rows": rows, "mailbox": incoming.mailbox.address,
                                                  "status": status},
                          mailbox=incoming.mailbox.address, recipient=reader.email,
                          reply_to=incoming.mailbox.address, person=reader, auto_submitted="auto-replied",
                          topic=LIST_TOPIC)
    return f"#list answered to {reader.email}: {len(rows)} open requests"
