"""Requests, participants and comments: the state changes of DESIGN "Helpdesk requests".

Everything here runs inside the caller's transaction and sends nothing; the
notifications are written to the outbox by ``gateway.notify``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.models import Comment, Event, Label, Participant, Person, Request
from gateway.settings import Mailbox

TEAM_ROLES = ("coordinator", "supplier", "observer")


def find_person(session: Session, email: str) -> Person | None:
    return session.scalars(select(Person).where(Person.email == email.lower())).first()


def upsert_person(session: Session, email: str, *, role: str | None = None, name: str | None = None,
                  locale: str | None = None, people: dict[str, Person | None] | None = None,
                  name_from_mail: bool = False) -> Person:
    """The account for an address, created as a customer unless a role is given (and not flushed: the
    rows that name it get its id in the same flush).

    ``people``: accounts by address that the caller read ahead (None: no account), used without a
    query; an account created here is added to it. ``name_from_mail``: the name is a From header's,
    which anyone can write: it names a new account, or one with no name yet, and never renames one
    (a stranger's "Carl - ACCOUNT LOCKED, pay at …" would greet Carl in every mail after).
    """
    email = email.lower()
    people = {} if people is None else people
    person = people[email] if email in people else find_person(session, email)
    if person is None:
        person = people[email] = Person(email=email, name=name or "", role=role or "customer", locale=locale)
        session.add(person)
        return person
    if role and person.role != role:
        person.role = role
    if name and person.name != name and not (name_from_mail and person.name):
        person.name = name
    if locale and person.locale != locale:
        person.locale = locale
    return person


_COORDINATORS = select(Person).where(Person.role == "coordinator").order_by(Person.id)


def coordinators(session: Session) -> list[Person]:
    return list(session.scalars(_COORDINATORS))


SUBJECT_LENGTH = 300  # a request's subject, which every mail about it repeats: the orders API's limit too


def open_request(session: Session, mailbox: Mailbox, subject: str, customer: Person,
                 root_message_id: str | None) -> tuple[Request, Participant]:
    """A new request with its customer as requester; coordinators are expected to answer. Its subject is
    cut to ``SUBJECT_LENGTH`` characters: a mail's is as long as its sender likes, and the acknowledgment
    would echo 40 KB of a stranger's words to whoever's address they put in From.

    Not flushed: the request gets its id with the first flush that needs one (its first mail).
    """
    if len(subject) > SUBJECT_LENGTH:
        subject = subject[:SUBJECT_LENGTH - 1].rstrip() + "…"
    request = Request(kind=mailbox.request_kind, mailbox=mailbox.address,
                      status="pending" if mailbox.request_kind == "order" else "new",
                      subject=subject or "(no subject)", root_message_id=root_message_id,
                      expected_response="coordinator",
                      participants=[], comments=[], labels=[], events=[])  # none yet: nothing to load later
    session.add(request)
    requester = join(session, request, customer.email, role="requester", name=customer.name, person=customer)
    return request, requester


def join(session: Session, request: Request, email: str, *, role: str, name: str = "",
         person: Person | None = None, mail_only: bool = False) -> Participant:
    """The participant row for an address, added when missing (a returning one is re-activated).

    Not flushed: its id (which reply tokens name) comes with the next flush, so joining
    several people costs one round trip (``Mailer.send`` flushes when it needs the id).
    """
    email = email.lower()
    for participant in request.participants:
        if participant.email == email:
            if not participant.active:
                participant.active = True
            return participant
    participant = Participant(request=request, email=email, name=name or (person.name if person else ""),
                              role=role, person=person, mail_only=mail_only, active=True)  # read before the flush
    session.add(participant)
    return participant


def requests_opened_since(session: Session, emails: Iterable[str], since: datetime) -> dict[str, int]:
    """How many requests each address opened since then, as stored: a flood of new requests is not
    announced. One query for all of them; an address that opened none is 0. Those its automatic mails
    opened (``AUTOMATIC``) do not count: they announce nothing, and anyone can send them in its name,
    which would silence its next real request."""
    opened = dict.fromkeys((email.lower() for email in emails), 0)
    if opened:
        automatic = select(Label.id).where(Label.request_id == Request.id, Label.name == AUTOMATIC).exists()
        opened.update(session.execute(select(Participant.email, func.count(Participant.id))
                                      .join(Request, Participant.request_id == Request.id)
                                      .where(Participant.email.in_(opened), Participant.role == "requester",
                                             Request.created_at >= since, ~automatic)
                                      .group_by(Participant.email)).all())
    return opened


# The label of a request opened by an automatic mail (an out-of-office, a list's mail, a report about no
# mail of ours): nothing automatic is mailed to its requester, and only the first few of a mailbox's hour
# are announced. A coordinator who removes it (``#unlabel automatic``) says a person wrote it.
AUTOMATIC = "automatic"


def mark_automatic(request: Request, why: str) -> None:
    request.labels.append(Label(name=AUTOMATIC))
    record_event(request, "automatic", f"opened by an automatic mail ({why}): nothing automatic is mailed to its "
                                       f"sender; `#unlabel {AUTOMATIC}` if a person wrote it")


def automatic_opened_since(session: Session, mailbox: str, since: datetime) -> int:
    """How many requests automatic mails opened in ``mailbox`` since then, as stored."""
    return session.scalar(select(func.count(Request.id)).join(Label, Label.request_id == Request.id)
                          .where(Request.mailbox == mailbox, Label.name == AUTOMATIC,
                                 Request.created_at >= since)) or 0


def opened_by_a_robot(request: Request) -> bool:
    return any(label.name == AUTOMATIC for label in request.labels)


def record_event(request: Request, kind: str, detail: str) -> None:
    request.events.append(Event(kind=kind, detail=detail))


@dataclass(frozen=True)
class Author:
    """Who wrote a comment, as far as the request is concerned."""

    email: str
    role: str  # requester, coordinator, supplier, observer
    participant: Participant | None
    unverified: bool = False

    @property
    def customer_side(self) -> bool:
        """An observer on the customer's side (a colleague from the Cc of the opening mail): the team's
        commands and its private-by-default habit are not theirs."""
        return self.participant is not None and self.participant.customer_side


def add_comment(session: Session, request: Request, author: Author, text: str, *, visibility: str,
                source: str = "email", inbound_id: int | None = None) -> Comment:
    comment = Comment(request=request, author_email=author.email, author_role=author.role,
                      visibility=visibility, text=text, source=source, unverified_sender=author.unverified,
                      inbound_id=inbound_id)
    session.add(comment)
    request.updated_at = utcnow()
    return comment


def remember_visibility(request: Request, comment: Comment) -> None:
    """A private team comment makes the next ones private too, until one is public again."""
    if comment.author_role in TEAM_ROLES and comment.visibility in ("public", "private"):
        request.sticky_private = comment.visibility == "private"


def change_visibility(session: Session, comment_id: int, visibility: str) -> str:
    """Make a comment public or private afterwards; a public comment already mailed stays known."""
    comment = session.get(Comment, comment_id)
    if comment is None or comment.visibility == "note":
        raise LookupError(f"no comment {comment_id}: `gateway requests show N --json` lists comment ids")
    if comment.unverified_sender and visibility == "public":
        raise LookupError(f"comment {comment_id} is from an unverified sender: it stays private")
    if comment.visibility == visibility:
        return f"comment {comment_id} is already {visibility}"
    was_mailed = comment.visibility == "public" and any(
        p.role == "requester" for p in comment.request.participants)
    comment.visibility = visibility
    detail = f"comment {comment_id} made {visibility}"
    if visibility == "private" and was_mailed:
        detail += "; it was public, so the customer has already seen it"
    record_event(comment.request, "visibility", detail)
    return detail
