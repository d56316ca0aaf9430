"""Who is told of what, written to the outbox inside the transaction (CONTRACT §8).

Nothing is sent here: rows are added and their ids returned, and the caller
enqueues ``send_mail`` for each once the transaction has committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.helpdesk import Author, coordinators, join, record_event
from gateway.models import Comment, MessageRef, Outbox, Participant, Person, Request, utcnow
from gateway.outbound.compose import compose, new_message_id
from gateway.outbound.render import render_mail
from gateway.settings import Settings
from gateway.tokens import mint_reply_token, reply_address


@dataclass
class Mailer:
    """Writes outbox rows for one transaction and remembers their ids for after the commit."""

    session: Session
    settings: Settings
    outbox_ids: list[int] = field(default_factory=list)

    def over_limit(self, request: Request, recipient: str) -> bool:
        since = utcnow() - timedelta(hours=1)
        sent = self.session.scalar(select(func.count(Outbox.id)).where(
            Outbox.recipient == recipient, Outbox.request_id == request.id, Outbox.created_at >= since))
        return (sent or 0) >= self.settings.mails_per_hour

    def send(self, request: Request, participant: Participant, event: str, audience: str,
             context: dict[str, Any], *, auto_submitted: str = "auto-generated") -> None:
        """One mail to one participant, unless their address fails or the hourly limit is reached."""
        person = participant.person
        if person is not None and person.failing_since is not None:
            return
        if self.over_limit(request, participant.email):
            record_event(request, "rate-limited",
                         f"{event} to {participant.email}: {self.settings.mails_per_hour} mails in the last hour")
            return
        locale = (person.locale if person else None) or self.settings.locale
        token = mint_reply_token(self.settings.secret_key, request.id, participant.id)
        reply_to = reply_address(request.mailbox.split("@")[0], self.settings.domain, token)
        rendered = render_mail(self.settings.home, event, audience, locale, {
            **context, "request": request, "recipient": participant, "site_name": self.settings.site_name,
            "base_url": self.settings.base_url})
        message_id = new_message_id(self.settings)
        raw = compose(self.settings, request, recipient=participant.email, reply_to=reply_to,
                      rendered=rendered, message_id=message_id, auto_submitted=auto_submitted)
        row = Outbox(request_id=request.id, sender=request.mailbox, recipient=participant.email,
                     template=f"{event}.{audience}", message_id=message_id, raw=raw)
        self.session.add(row)
        self.session.add(MessageRef(message_id=message_id, request_id=request.id, outgoing=True))
        self.session.flush()
        self.outbox_ids.append(row.id)


def coordinators_to_tell(session: Session, request: Request) -> list[Person]:
    """Unassigned: every coordinator. Assigned: the assignee and the coordinators who commented."""
    everyone = coordinators(session)
    if request.assignee_id is None:
        return everyone
    commented = {c.author_email for c in request.comments if c.author_role == "coordinator"}
    return [p for p in everyone if p.id == request.assignee_id or p.email in commented]


def _may_see(participant: Participant, comment: Comment) -> bool:
    if participant.role == "requester":
        return comment.visibility == "public" and not comment.unverified_sender
    if comment.visibility == "note":
        return participant.role in ("coordinator", "supplier")
    return True


def tell_team(mailer: Mailer, request: Request, event: str, context: dict[str, Any],
              exclude: str = "") -> None:
    """The coordinators to tell (and the request's active suppliers) get ``event.coordinator``."""
    for person in coordinators_to_tell(mailer.session, request):
        if person.email != exclude:
            participant = join(mailer.session, request, person.email, role="coordinator", person=person)
            mailer.send(request, participant, event, "coordinator", context)
    for participant in list(request.participants):
        if participant.role == "supplier" and participant.active and participant.email != exclude:
            mailer.send(request, participant, event, "coordinator", context)


def notify_new_request(mailer: Mailer, request: Request, comment: Comment, requester: Participant,
                       *, acknowledge: bool, defects: list[str]) -> None:
    """Coordinators are alerted; the customer gets one acknowledgment, never an automatic sender."""
    context = {"comment": comment, "defects": defects, "expected": request.expected_response == "coordinator"}
    tell_team(mailer, request, "new_request", context, exclude=comment.author_email)
    if acknowledge:
        mailer.send(request, requester, "acknowledgment", "customer", {"comment": comment},
                    auto_submitted="auto-replied")


def notify_comment(mailer: Mailer, request: Request, comment: Comment, author: Author,
                   defects: list[str]) -> None:
    """Each participant who may see the comment, never its author."""
    context = {"comment": comment, "author": author, "defects": defects}
    team_context = {**context, "expected": request.expected_response == "coordinator"}
    tell_team(mailer, request, "comment", team_context, exclude=comment.author_email)
    for participant in list(request.participants):
        if not participant.active or participant.email == comment.author_email:
            continue
        if participant.role == "requester" and _may_see(participant, comment):
            mailer.send(request, participant, "comment", "customer", context)
        elif participant.role == "observer" and _may_see(participant, comment):
            mailer.send(request, participant, "comment", "coordinator", context)
