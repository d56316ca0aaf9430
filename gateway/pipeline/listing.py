"""``#list`` sent to a bare mailbox address: the open requests (a supplier's or an observer's own), those
waiting on the reader first."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from gateway.clock import utcnow
from gateway.commands.grammar import split_commands
from gateway.models import Participant, Person, Request
from gateway.pipeline.message import Incoming

CLOSED = ("resolved", "declined", "completed", "cancelled")


LIST_TOPIC = "list"  # the outbox topic of #list answers, counted for the hourly cap

def is_list_command(incoming: Incoming, person: Person) -> bool:
    """``#list`` from a coordinator (the mailbox's inbox), or from a supplier or an observer (the
    requests they take part in); from anyone else it is the first line of a new request."""
    commands, _rest = split_commands(incoming.parsed.reply_text, incoming.parsed.own_reply_text)
    if not commands or commands[0].name != "list":
        return False
    return person.role == "coordinator" or bool(_taking_part(incoming, person, limit=1))


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


def answer_list(incoming: Incoming, reader: Person) -> str:
    """The inbox, to the coordinator's own address only, at most ``mails_per_hour`` listings an hour: the
    command needs no authentication, so a From forged by a stranger must not flood the coordinator."""
    limit = incoming.settings.mails_per_hour
    if incoming.mailer.recent(reader.email, topic=LIST_TOPIC) >= limit:
        return f"#list not answered to {reader.email}: {limit} listings in the last hour"
    commands, _rest = split_commands(incoming.parsed.reply_text, incoming.parsed.own_reply_text)
    status = commands[0].args.lower()
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
