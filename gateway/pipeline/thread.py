"""Which request a message belongs to, and who wrote it (CONTRACT §4, in that order).

1. a valid reply token in the envelope or in To/Cc;
2. In-Reply-To / References naming a Message-ID we sent or received;
3. a ``[#N]`` subject tag, only when From is already a participant (strangers are never
   merged into someone else's request that way);
4. otherwise: a new request.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from gateway.helpdesk import Author, find_person
from gateway.mail.authentication import authenticated_by, dkim_verified
from gateway.mail.forwards import FORWARD_SUBJECT
from gateway.mail.parse import ParsedMail
from gateway.models import MessageRef, Participant, Request
from gateway.settings import Settings
from gateway.tokens import ReplyToken, verify_reply_token

_SUBJECT_TAG = re.compile(r"\[#(\d{1,12})\]")
# What the rules and the notifications read of the request, loaded with it in one query (a request
# has a few labels and participants): one lazy load at a time, after the mail has changed
# something, would cost a query and a flush each.
_WITH_WHAT_PROCESSING_READS = (joinedload(Request.assignee), joinedload(Request.labels),
                               joinedload(Request.participants).joinedload(Participant.person))
_WITH_ITS_REQUEST = (joinedload(Participant.request).options(*_WITH_WHAT_PROCESSING_READS),)


@dataclass(frozen=True)
class Thread:
    request: Request | None  # None: a new request
    author: Author | None
    via: str  # "token", "references", "subject-tag", "new"


def is_forward(parsed: ParsedMail) -> bool:
    """A forwarded message (``Fwd:`` with the original inside) starts a conversation of its own."""
    if parsed.forwarded is not None:
        return True
    if not FORWARD_SUBJECT.match(parsed.subject):
        return False
    text = parsed.text.lower()
    return parsed.embeds_message or "forwarded message" in text or "message transféré" in text


def _request(session: Session, request_id: int) -> Request | None:
    return session.get(Request, request_id, options=_WITH_WHAT_PROCESSING_READS)


def _author(session: Session, request: Request, sender: str, token_of: Participant | None,
            authenticated: Callable[[], bool]) -> Author:
    """Who wrote, and with what rights: they come from a secret or from authentication, never from
    From alone (CONTRACT §4).

    With a token (``token_of``, its participant): its own participant, or a coordinator answering
    with a fellow coordinator's. Without one: a participant or a coordinator whose mail the site's
    MTA authenticated, or the customer (who has no rights to gain). Anyone else is unverified.
    """
    known = next((p for p in request.participants if p.email == sender and p.active), None)
    if token_of is not None:
        if token_of.email == sender and token_of.active:
            return Author(sender, token_of.role, token_of)
        vouched = token_of.role == "coordinator" and token_of.active
    else:
        if known is not None and (known.role == "requester" or authenticated()):
            return Author(sender, known.role, known)
        vouched = authenticated()
    person = find_person(session, sender) if vouched else None
    if person is not None and person.role == "coordinator":
        return Author(sender, "coordinator", known)
    return Author(sender, known.role if known else "unknown", known, unverified=True)


def _named(parsed: ParsedMail, envelope_to: list[str], settings: Settings) -> list[ReplyToken]:
    """What the message's reply tokens name, each checked at the mailbox address it came with."""
    named = []
    for address, token in parsed.reply_addresses(envelope_to):
        if settings.mailbox_for(address) is not None:
            found = verify_reply_token(settings.secret_key, token, address.split("+", 1)[0])
            if found is not None:
                named.append(found)
    return named


def _by_token(session: Session, parsed: ParsedMail, envelope_to: list[str], settings: Settings,
              sender: str) -> Thread | None:
    for named in _named(parsed, envelope_to, settings):
        with session.no_autoflush:  # a token names a participant committed before this transaction
            participant = session.get(Participant, named.participant_id, options=_WITH_ITS_REQUEST)
        if participant is None or participant.request_id != named.request_id:
            continue
        author = _author(session, participant.request, sender, participant, lambda: False)  # the token's rights
        return Thread(participant.request, author, "token")
    return None


REFERENCES_READ = 50  # the newest References of a message: a thread is named by its last ones, and a
# hostile mail with thousands would make a query with as many parameters


def _by_references(session: Session, parsed: ParsedMail, sender: str, authenticated: Callable[[], bool],
                   named: Mapping[str, Request] | None) -> Thread | None:
    wanted = [m for m in [parsed.in_reply_to, *reversed(parsed.references[-REFERENCES_READ:])] if m]
    if not wanted:
        return None
    if named is None:
        named = requests_named(session, dict(session.execute(
            select(MessageRef.message_id, MessageRef.request_id).where(MessageRef.message_id.in_(wanted))).all()))
    request = next((named[message_id] for message_id in wanted if message_id in named), None)
    if request is None:
        return None
    return Thread(request, _author(session, request, sender, None, authenticated), "references")


def requests_named(session: Session, stored: Mapping[str, int]) -> dict[str, Request]:
    """The requests of stored Message-IDs (``stored``: Message-ID to request id), each loaded with what
    processing reads, all in one query; a Message-ID whose request is gone is left out."""
    if not stored:
        return {}
    requests = {request.id: request for request in session.scalars(
        select(Request).where(Request.id.in_(set(stored.values()))).options(*_WITH_WHAT_PROCESSING_READS)).unique()}
    return {message_id: requests[request_id] for message_id, request_id in stored.items() if request_id in requests}


def _by_subject_tag(session: Session, parsed: ParsedMail, sender: str,
                    authenticated: Callable[[], bool]) -> Thread | None:
    match = _SUBJECT_TAG.search(parsed.subject)
    if not match:
        return None
    request = _request(session, int(match.group(1)))
    if request is None:
        return None
    if not any(p.email == sender and p.active for p in request.participants) and not _a_coordinator(session, sender):
        return None
    return Thread(request, _author(session, request, sender, None, authenticated), "subject-tag")


def _a_coordinator(session: Session, sender: str) -> bool:
    """A coordinator may take up any request by its tag, one they were never told of included (a request an
    automatic mail opened): with their MTA's word as a coordinator, else as an unverified comment on it
    rather than a new request in their name."""
    person = find_person(session, sender)
    return person is not None and person.role == "coordinator"


def read_ahead_tokens(session: Session, mails: list[tuple[ParsedMail, list[str]]], settings: Settings) -> list[Request]:
    """The participants the mails' reply tokens name, with their requests, loaded in one query as
    ``find_thread`` reads them: a batch of replies is then threaded without a query each."""
    ids = {named.participant_id for parsed, envelope_to in mails for named in _named(parsed, envelope_to, settings)}
    if not ids:
        return []
    participants = session.scalars(select(Participant).where(Participant.id.in_(ids))
                                   .options(*_WITH_ITS_REQUEST)).unique().all()
    return list({participant.request_id: participant.request for participant in participants}.values())


def is_authenticated(parsed: ParsedMail, raw: bytes, settings: Settings) -> bool:
    """The site's MTA vouches for the From (DKIM or DMARC pass aligned with it, in an
    Authentication-Results of ``trusted_authserv_id``), or the gateway's own DKIM check does; never for
    a From that names no one for certain (``ParsedMail.sender_unambiguous``: a second From above a
    signed one)."""
    if not parsed.sender_unambiguous:
        return False
    sender = parsed.sender.address if parsed.sender else ""
    return (authenticated_by(parsed.authentication_results, sender, settings.trusted_authserv_id) is not None
            or settings.check_dkim and dkim_verified(raw, sender, settings.dkim_txt) is not None)


def find_thread(session: Session, parsed: ParsedMail, raw: bytes, envelope_to: list[str], settings: Settings,
                named: Mapping[str, Request] | None = None) -> Thread:
    """The request a message belongs to and its author. A From that names no one for certain
    (``ParsedMail.sender_unambiguous``) makes its author unverified whatever else it has; ``raw`` is
    read only for the gateway's own DKIM check. ``named``: the requests of the Message-IDs its
    In-Reply-To and References name, read before for a whole batch (``requests_named``); None: read here."""
    sender = parsed.sender.address if parsed.sender else ""
    found = _by_token(session, parsed, envelope_to, settings, sender)
    if found is None and not is_forward(parsed):
        @cache
        def authenticated() -> bool:  # asked only where a team role's rights are at stake
            return is_authenticated(parsed, raw, settings)

        found = (_by_references(session, parsed, sender, authenticated, named)
                 or _by_subject_tag(session, parsed, sender, authenticated))
    if found is None:
        return Thread(None, None, "new")
    if not parsed.sender_unambiguous and found.author is not None and not found.author.unverified:
        author = found.author
        found = Thread(found.request, Author(author.email, author.role, author.participant, unverified=True),
                       found.via)
    return found
