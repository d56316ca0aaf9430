"""Who is told of what, written to the outbox inside the transaction (CONTRACT §8).

Nothing is sent here: rows are added and their ids returned, and the caller hands them to
the sender once the transaction has committed (``queues.send_mail``, or ``deliver_all`` in a
command that has no worker).

A mail is rendered and composed where it is asked for (``Mailer.send``), so a template error
is raised there, with the template and the request. The mails of a transaction are inserted
together by ``Mailer.write_outbox``, which whoever commits calls just before the commit
(``transaction.mailing``, the pipeline's ``process``, the sweep's ``run_due``): a commit with
mails not written is refused, rather than losing them. They are plain inserts rather than
the ORM's unit of work: with their Message-IDs they are half the rows that processing a
message writes, and the unit of work costs more per row than the rest of the insert.

A mail to a participant who has no id yet (a new request's: the reply token names them by
id) is written at the next flush rather than at once, and so are the other mails of a new
request: a flush for each new request would cost more than the rest of its processing. It shows the
request as its message left it: the mails waiting are written before another message of
the transaction changes that request (``write_waiting``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from jinja2 import UndefinedError
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from gateway.clock import utcnow
from gateway.helpdesk import Author, coordinators, join, opened_by_a_robot, record_event
from gateway.models import Comment, MessageRef, Outbox, OutboxBody, Participant, Person, Request
from gateway.outbound.compose import MailFile, UnsafeHeader, compose, new_message_id
from gateway.outbound.guide import hint
from gateway.outbound.leaks import find_leak
from gateway.outbound.render import render_mail, render_text
from gateway.settings import Settings
from gateway.tokens import mint_person_token, mint_reply_token, reply_address

# The outbox's topic of mails about a comment that came with no secret (no reply token, no authentication):
# an unverified one, or a customer's threaded by subject tag or References. They have an hourly limit of
# their own (``Mailer.send``).
SECRETLESS_TOPIC = "secretless"


class UnwrittenMail(RuntimeError):
    """A transaction committed with mails asked for and not written: a mistake of the code that commits."""


@dataclass
class _Mail:
    """One outbox row of this transaction, inserted with the others when it commits.

    ``mark``: the value of ``Mailer.written`` when it was asked for (a mail the leak guard writes
    takes the mark of the mail it held).
    """

    mark: int
    created_at: datetime = field(default_factory=utcnow)  # asked for: before its message is marked processed
    row: dict[str, Any] = field(default_factory=dict)  # filled when written
    raw: bytes = b""
    id: int | None = None

    @property
    def status(self) -> str:
        return str(self.row["status"])


@dataclass
class Mailer:
    """Writes outbox rows for one transaction and remembers their ids for after the commit."""

    session: Session
    settings: Settings
    _rows: list[_Mail] = field(default_factory=list)
    _inserted: int = 0
    _written: int = 0
    _waiting: list[tuple[Request, Callable[[], None]]] = field(default_factory=list)  # to write once ids exist
    _coordinators: list[Person] | None = None
    # Mails of the last hour by request, recipient and budget (True: about a comment that came with no secret).
    _recent_by_request: dict[tuple[Request, str, bool], int] = field(default_factory=dict)
    _started: datetime = field(default_factory=utcnow)
    _quiet: list[tuple[int, int]] = field(default_factory=list)  # marks whose mails are kept, never sent

    def __post_init__(self) -> None:
        event.listen(self.session, "before_commit", self._refuse_unwritten)
        event.listen(self.session, "do_orm_execute", self._before_query)
        event.listen(self.session, "after_soft_rollback", self._forget)

    def _before_query(self, state: ORMExecuteState) -> None:
        """A query of the outbox sees this transaction's mails, as autoflush lets a query see the other
        changes (and, as with autoflush, not inside ``no_autoflush``)."""
        if (self._inserted < len(self._rows) and state.session.autoflush and state.is_select
                and Outbox.__mapper__ in state.all_mappers):
            self.write_outbox()

    def _refuse_unwritten(self, session: Session) -> None:
        if session.in_nested_transaction():  # a savepoint released: the commit comes later
            return
        if self._waiting or self._inserted < len(self._rows):
            raise UnwrittenMail(f"{len(self._rows) - self._inserted} mails asked for and not written: call "
                                "Mailer.write_outbox before the commit")

    def write_waiting(self, request: Request) -> None:
        """Write the mails waiting for ids now if some are about ``request``: before another message of
        the transaction changes it."""
        if any(about is request for about, _write in self._waiting):
            self._write_waiting()

    def _write_waiting(self) -> None:
        if not self._waiting:
            return
        self.session.flush()
        waiting, self._waiting = self._waiting, []
        for _request, write in waiting:
            write()

    def write_outbox(self) -> None:
        """Insert the mails asked for since the last time, and the Message-IDs that thread replies to them
        (a new request's mails are rendered now, once its participants have ids)."""
        self._write_waiting()
        mails = self._rows[self._inserted:]
        if not mails:
            return
        self.session.flush()  # what the mails are about exists first
        for mail in mails:
            if any(start <= mail.mark < end for start, end in self._quiet):  # imported history: kept, never sent
                mail.row["status"] = "suppressed"
        connection = self.session.connection()
        # matched by Message-ID, not by order: rows in order cost SQLite one statement each
        ids = dict(connection.execute(insert(Outbox).returning(Outbox.message_id, Outbox.id),
                                      [mail.row for mail in mails]).all())
        for mail in mails:
            mail.id = ids[mail.row["message_id"]]
        connection.execute(insert(OutboxBody), [{"outbox_id": mail.id, "raw": mail.raw} for mail in mails])
        refs = [{"message_id": mail.row["message_id"], "request_id": mail.row["request_id"], "outgoing": True}
                for mail in mails if mail.row["request_id"] is not None]
        if refs:
            connection.execute(insert(MessageRef), refs)
        self._inserted = len(self._rows)

    def quiet(self, start: int, end: int) -> None:
        """The mails asked for between these two marks of ``written`` are kept, marked suppressed, and
        never sent: those of a message imported quietly (``inbound.quiet``)."""
        self._quiet.append((start, end))

    def _forget(self, _session: Session, _transaction: SessionTransaction) -> None:
        """Rolled back: the mails written so far are not to be sent, nor inserted, nor counted; what was read
        is read again."""
        self._rows, self._inserted, self._waiting, self._written, self._quiet = [], 0, [], 0, []
        self._recent_by_request, self._coordinators = {}, None

    @property
    def written(self) -> int:
        """How many mails this transaction has asked for so far: a mark for ``outbox_ids_between``."""
        return self._written

    @property
    def outbox_ids(self) -> list[int]:
        """The rows to send once the transaction has committed (held ones stay behind)."""
        return self.outbox_ids_between(0, self._written)

    def outbox_ids_between(self, start: int, end: int) -> list[int]:
        """``outbox_ids`` of the mails asked for between two marks of ``written`` (inserted now if the
        transaction has not committed yet)."""
        self.write_outbox()
        return [mail.id for mail in self._rows
                if start <= mail.mark < end and mail.status == "pending" and mail.id is not None]

    def _mail(self, request: Request | None, recipient: str, mark: int | None = None, *,
              secretless: bool = False) -> _Mail:
        """A new mail of this transaction, in order, counted against the hourly limit at once (``secretless``:
        against the budget of mails about comments that came with no secret)."""
        if mark is None:
            mark, self._written = self._written, self._written + 1
        mail = _Mail(mark)
        self._rows.append(mail)
        self.session.connection()  # the transaction has begun, so that rolling it back forgets the mail
        if request is not None and (request, recipient, secretless) in self._recent_by_request:
            self._recent_by_request[request, recipient, secretless] += 1
        return mail

    def coordinators(self) -> list[Person]:
        """Every coordinator account, read once per transaction."""
        if self._coordinators is None:
            self._coordinators = coordinators(self.session)
        return self._coordinators

    def recent(self, recipient: str, *, topic: str | None = None) -> int:
        """Mails written to ``recipient`` in the last hour, of one topic (or all)."""
        query = select(func.count(Outbox.id)).where(
            Outbox.recipient == recipient, Outbox.created_at >= utcnow() - timedelta(hours=1))
        if topic is not None:
            query = query.where(Outbox.topic == topic)
        return self.session.scalar(query) or 0

    def read_ahead(self, *requests: Request | None) -> None:
        """Read what notifying reads, the coordinators and the last hour's mails to the requests' people,
        before the caller changes anything: read afterwards, each query would flush the changes first."""
        emails = {p.email for p in self.coordinators()}
        self._count_recent({request: {p.email for p in request.participants} | emails
                            for request in requests if request is not None})

    def _recent_for_request(self, request: Request, recipient: str, secretless: bool) -> int:
        """Mails to ``recipient`` about a request in the last hour, of one budget: read for all its
        participants with one query, then counted up as this transaction mails them."""
        if (request, recipient, secretless) not in self._recent_by_request:
            self._count_recent({request: {p.email for p in request.participants} | {recipient}})
        return self._recent_by_request[request, recipient, secretless]

    def _count_recent(self, wanted: dict[Request, set[str]]) -> None:
        """Read the last hour's mails of each request to each address, unless known already."""
        unknown = set()
        for request, addresses in wanted.items():
            # opened in this transaction: no mail before it, and this transaction counts its own
            opened_since = request.id is None or request.created_at >= self._started
            for key in {(request, address, secretless) for address in addresses
                        for secretless in (False, True)} - self._recent_by_request.keys():
                if opened_since:
                    self._recent_by_request[key] = 0
                else:
                    unknown.add(key)
        if not unknown:
            return
        with self.session.no_autoflush:  # what this transaction wrote is counted as it is written
            secretless = Outbox.topic == SECRETLESS_TOPIC
            stored = {(request_id, address, bool(about)): count
                      for request_id, address, about, count in self.session.execute(
                          select(Outbox.request_id, Outbox.recipient, secretless, func.count(Outbox.id))
                          .where(Outbox.request_id.in_({request.id for request, _address, _about in unknown}),
                                 Outbox.recipient.in_({address for _request, address, _about in unknown}),
                                 Outbox.created_at >= utcnow() - timedelta(hours=1))
                          .group_by(Outbox.request_id, Outbox.recipient, secretless))}
        for request, address, about in unknown:
            self._recent_by_request[request, address, about] = stored.get((request.id, address, about), 0)

    def send(self, request: Request, participant: Participant, event: str, audience: str,
             context: dict[str, Any], *, auto_submitted: str = "auto-generated",
             files: Sequence[MailFile] = (), secretless: bool = False) -> None:
        """One mail about a request to one participant, Reply-To their own token, within the hourly limit;
        ``files`` are attached (a delivery's). ``secretless``: about a comment that came with no secret,
        which anyone who knows the customer's address and the request's number can write: such mails have
        a limit of their own, and a stranger's score of them must not use up the hour's mails about the
        request (the team would no longer hear of the customer's real reply)."""
        if participant.person is not None and participant.person.failing_since is not None:
            return
        if self.settings.is_own_address(participant.email):
            record_event(request, "not-sent", f"{event} to {participant.email}: one of the gateway's own addresses")
            return
        if (audience == "customer" and event != "comment" and participant.role == "requester"
                and opened_by_a_robot(request)):  # what a coordinator writes still goes: a person chose to
            record_event(request, "not-sent", f"{event} to {participant.email}: the request was opened by an "
                                              "automatic mail")
            return
        if self._recent_for_request(request, participant.email, secretless) >= self.settings.mails_per_hour:
            about = " about comments that came with no reply token" if secretless else ""
            record_event(request, "rate-limited", f"{event} to {participant.email}: "
                                                  f"{self.settings.mails_per_hour} mails{about} in the last hour")
            return
        mail = self._mail(request, participant.email, secretless=secretless)

        def write() -> None:
            self._write(mail, event, audience, context, mailbox=request.mailbox, recipient=participant.email,
                        reply_to=self.reply_to(request, participant), person=participant.person, request=request,
                        auto_submitted=auto_submitted, files=files, topic=SECRETLESS_TOPIC if secretless else "")

        if participant.id is None or any(about is request for about, _write in self._waiting):
            self._waiting.append((request, write))  # in order with the request's other mails
        else:
            write()

    def reply_to(self, request: Request, participant: Participant) -> str:
        local_part = request.mailbox.split("@")[0]
        token = mint_reply_token(self.settings.secret_key, local_part, request.id, participant.id)
        return reply_address(local_part, self.settings.domain, token)

    def _hold_if_leaking(self, request: Request, text: str, mail: _Mail, context: dict[str, Any],
                         ours: Callable[[], str]) -> None:
        """Hold a customer mail that repeats a private comment, a note or an unverified comment, in words
        that are not its template's own (``ours``)."""
        with self.session.no_autoflush:  # comments not flushed yet are in the collection all the same
            secrets = [c.text for c in request.comments if c.visibility != "public" or c.unverified_sender]
        leak = find_leak(text, secrets, ours)
        if leak is None:
            return
        mail.row["status"] = "held"
        recipient = mail.row["recipient"]
        record_event(request, "leak-held", f"mail to {recipient} held: it repeats “{leak}”")
        comment = context.get("comment")
        author = comment.author_email if isinstance(comment, Comment) else None
        participant = next((p for p in request.participants if p.email == author), None)
        if participant is not None:  # counted in the held mail's budget: a stranger's comment spends its own
            topic = mail.row["topic"] if mail.row["topic"] == SECRETLESS_TOPIC else ""
            self._write(self._mail(request, participant.email, mail.mark, secretless=bool(topic)), "leak_held",
                        "sender", {"leak": leak, "recipient": recipient}, mailbox=request.mailbox,
                        recipient=participant.email, reply_to=self.reply_to(request, participant),
                        person=participant.person, request=request, topic=topic)

    def _template_words(self, event: str, audience: str, locale: str, context: dict[str, Any]) -> str:
        """The text part with what people wrote left out (``_WORDS_LEFT_OUT``): the template's own words.
        A home's template that reads more of a comment than its text has none to give: then every shared
        run counts, as before (the mail is held rather than let through)."""
        try:
            return render_text(self.settings.home, event, audience, locale, {**context, **_WORDS_LEFT_OUT})
        except UndefinedError:
            return ""

    def write(self, event: str, audience: str, context: dict[str, Any], *, mailbox: str, recipient: str,
              reply_to: str, person: Person | None, request: Request | None = None,
              auto_submitted: str = "auto-generated", original: bytes | None = None, topic: str = "") -> None:
        """Render, compose and queue one mail; the lower-level door for mails outside a request too. Never
        to one of the gateway's own addresses."""
        if self.settings.is_own_address(recipient):
            return
        self._write(self._mail(request, recipient), event, audience, context, mailbox=mailbox, recipient=recipient,
                    reply_to=reply_to, person=person, request=request, auto_submitted=auto_submitted,
                    original=original, topic=topic)

    def _write(self, mail: _Mail, event: str, audience: str, context: dict[str, Any], *, mailbox: str,
               recipient: str, reply_to: str, person: Person | None, request: Request | None = None,
               auto_submitted: str = "auto-generated", original: bytes | None = None, topic: str = "",
               files: Sequence[MailFile] = ()) -> None:
        locale = (person.locale if person else None) or self.settings.locale
        full = {**context, "request": request, "site_name": self.settings.site_name,
                "base_url": self.settings.base_url, "recipient_email": recipient,
                "recipient_name": person.name if person else "",
                "commands": _commands(request, audience, recipient, person, locale, context),
                "my_page": page_link(self.settings, person) if audience == "customer" and person and person.id else ""}
        rendered = render_mail(self.settings.home, event, audience, locale, full)
        message_id = new_message_id(self.settings)
        try:
            raw = compose(self.settings, mailbox=mailbox, recipient=recipient, reply_to=reply_to, rendered=rendered,
                          message_id=message_id, number=request.id if request else None,
                          root_message_id=request.root_message_id if request else None,
                          auto_submitted=auto_submitted, original=original, files=files)
        except UnsafeHeader as error:  # no mail: the error names what would have made it
            where = f"request #{request.id}" if request else "no request"
            raise UnsafeHeader(f"{error} (mail {event}.{audience} to {recipient!r}, {where})") from error
        mail.row = {"request_id": request.id if request else None, "sender": mailbox, "recipient": recipient,
                    "status": "pending", "template": f"{event}.{audience}", "topic": topic, "message_id": message_id,
                    "created_at": mail.created_at}
        mail.raw = raw
        if audience == "customer" and request is not None:
            self._hold_if_leaking(request, rendered.text, mail, context,
                                  lambda: self._template_words(event, audience, locale, full))


# What people wrote, in the context of a mail to a customer: the comment it carries (and who wrote it: a
# colleague's name is said above their words), a quote's text, a reason given. Left out, the template's
# rendering is the gateway's own words (``leaks``).
_WORDS_LEFT_OUT: dict[str, Any] = {
    "comment": SimpleNamespace(text="", author_email="", author_role="coordinator"), "text": "", "reason": ""}


def page_link(settings: Settings, person: Person) -> str:
    """The customer's own page (``orders.customer_page``), named in the footer of every mail they get."""
    return f"{settings.base_url}/me/{mint_person_token(settings.secret_key, person.id, person.page_key or 0)}"


def _commands(request: Request | None, audience: str, recipient: str, person: Person | None, locale: str,
              context: dict[str, Any]) -> str:
    """The footer line of a team mail about a request: the commands its reader may use now
    (``outbound.guide``), for their role in the request; ``also_commands``: what the order adds."""
    if request is None or audience != "coordinator":
        return ""
    participant = next((p for p in request.participants if p.email == recipient), None)
    role = participant.role if participant is not None else person.role if person is not None else "coordinator"
    return hint(request, role, locale, tuple(context.get("also_commands", ())))


def coordinators_to_tell(mailer: Mailer, request: Request) -> list[Person]:
    """Unassigned: every coordinator. Assigned: the assignee and the coordinators who commented."""
    everyone = mailer.coordinators()
    if request.assignee is None:
        return everyone
    commented = {c.author_email for c in request.comments if c.author_role == "coordinator"}
    return [p for p in everyone if p is request.assignee or p.email in commented]


def _may_see(participant: Participant, comment: Comment) -> bool:
    if participant.role == "requester" or participant.customer_side:
        return comment.visibility == "public" and not comment.unverified_sender
    if comment.visibility == "note":
        return participant.role in ("coordinator", "supplier")
    return True


def _expected_from(request: Request, participant: Participant) -> bool:
    """Whether this team member is the one who must answer next."""
    if participant.role == "supplier":
        return request.expected_response == "supplier"
    return request.expected_response == "coordinator" and request.assignee in (None, participant.person)


def tell_team(mailer: Mailer, request: Request, event: str, context: dict[str, Any],
              exclude: str = "", files: Sequence[MailFile] = (), secretless: bool = False) -> None:
    """The coordinators to tell (and the request's active suppliers) get ``event.coordinator``;
    the one who must answer next is told so. ``secretless``: see ``Mailer.send``."""
    told = [join(mailer.session, request, person.email, role="coordinator", person=person)
            for person in coordinators_to_tell(mailer, request) if person.email != exclude]
    told += [p for p in request.participants if p.role == "supplier" and p.active and p.email != exclude]
    for participant in told:
        mailer.send(request, participant, event, "coordinator",
                    {**context, "expected": _expected_from(request, participant)}, files=files, secretless=secretless)


def notify_new_request(mailer: Mailer, request: Request, comment: Comment, requester: Participant,
                       *, acknowledge: bool, defects: list[str], opened_before: int,
                       observers: list[str] | None = None, event: str = "new_request",
                       about: dict[str, Any] | None = None, files: Sequence[MailFile] = ()) -> None:
    """Coordinators are alerted with ``event`` (an order opened by mail: ``order_new``, ``about`` it),
    with the observers the customer's Cc added; the customer gets one acknowledgment, never an
    automatic sender.

    ``opened_before``: the requests the same sender opened in the last hour. Past
    ``requests_per_sender_hour`` of them, a flood (a mail bomb, a forged sender, two robots) would turn
    into as many acknowledgments and alerts: the coordinators get one digest, then nothing more for
    the hour, and nobody is acknowledged. Every request is still there, in the inbox.
    """
    limit = mailer.settings.requests_per_sender_hour
    if opened_before >= limit:
        record_event(request, "rate-limited", f"{requester.email} opened {opened_before + 1} requests within an "
                                              "hour: no acknowledgment, no alert")
        if opened_before == limit:
            tell_team(mailer, request, "flood", {"comment": comment, "sender": requester.email,
                                                 "limit": limit}, exclude=comment.author_email)
        return
    context = {**(about or {}), "comment": comment, "defects": defects, "observers": observers or []}
    tell_team(mailer, request, event, context, exclude=comment.author_email, files=files)
    if acknowledge:
        mailer.send(request, requester, "acknowledgment", "customer",
                    {"comment": comment, "order_link": context.get("order_link", "")}, auto_submitted="auto-replied")


def notify_comment(mailer: Mailer, request: Request, comment: Comment, author: Author,
                   defects: list[str], about: dict[str, Any] | None = None, files: Sequence[MailFile] = (), *,
                   secretless: bool = False) -> None:
    """Each participant who may see the comment, never its author; its ``files`` go with it. An unverified
    comment's author is only who its From names: a coordinator named so is told too, as the others are,
    that someone wrote as them. ``secretless``: the comment came with no secret (``Mailer.send``)."""
    context = {**(about or {}), "comment": comment, "author": author, "defects": defects, "expected": False}
    tell_team(mailer, request, "comment", context, exclude="" if comment.unverified_sender else comment.author_email,
              files=files, secretless=secretless)
    for participant in list(request.participants):
        if not participant.active or participant.email == comment.author_email:
            continue
        if participant.role == "requester" and _may_see(participant, comment):
            mailer.send(request, participant, "comment", "customer", context, files=files, secretless=secretless)
        elif participant.role == "observer" and _may_see(participant, comment):
            mailer.send(request, participant, "comment", "customer" if participant.customer_side else "coordinator",
                        context, files=files, secretless=secretless)
