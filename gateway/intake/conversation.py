"""The conversation a message belongs to, given at admission: what its order is kept within.

Messages of one conversation are applied one after the other, in the order they were received;
messages of different ones in parallel (``pipeline.claim``). The key is, in this order:
- the request a valid reply token names (``request:N``), in the envelope or in To/Cc;
- the request an In-Reply-To or References names: a message the gateway sent or applied for it, or a
  message admitted before and not applied yet (its key, then);
- else the sender (``sender:ADDRESS``): a new request and a quick follow-up from the same person.

It is read from the headers alone, so that admission stays cheap. A key decides only what waits for
what, never a right: the pipeline threads the message again, fully, when it applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.intake.spool import Envelope
from gateway.mail.parse import Heads
from gateway.models import Inbound, MessageRef, Request
from gateway.settings import Settings
from gateway.tokens import verify_reply_token


@dataclass(frozen=True)
class Keyed:
    """What admission keeps of a message's headers: its conversation, and its Message-ID."""

    conversation: str
    message_id: str | None


def conversations(session: Session, settings: Settings, messages: list[tuple[Envelope, Heads]]) -> list[Keyed]:
    """Each message's conversation, in the order given; those that follow another of the same list
    (a quick reply admitted with the mail it answers) take its key. Three queries for the whole list.

    A conversation keeps the key it started with: a request's key is that of the message that opened
    it (``_openers``), so that a reply admitted after the request exists (``request:N`` by its token)
    and one admitted before (the opener's ``sender:`` key) still wait for each other.
    """
    wanted = {ref for _envelope, head in messages for ref in head.references}
    known: dict[str, str] = {}  # Message-ID: the conversation of the message admitted with it
    requests: dict[str, int] = {}  # Message-ID: the request of a mail the gateway sent (or applied)
    if wanted:
        known = {message_id: conversation for message_id, conversation in session.execute(
            select(Inbound.message_id, Inbound.conversation)
            .where(Inbound.message_id.in_(wanted), Inbound.conversation != "")) if message_id}
        requests = {message_id: request_id for message_id, request_id in session.execute(
            select(MessageRef.message_id, MessageRef.request_id)
            .where(MessageRef.message_id.in_(wanted - known.keys())))}
    tokens = [_by_token(settings, envelope, head) for envelope, head in messages]
    opened = _openers(session, {*requests.values(), *(request_id for request_id in tokens if request_id)})
    keyed = []
    for (envelope, head), by_token in zip(messages, tokens, strict=True):
        by_reference = next((known[ref] for ref in head.references if ref in known), None)
        request_id = by_token or next((requests[ref] for ref in head.references if ref in requests), None)
        if by_token is None and by_reference is not None:
            conversation = by_reference
        elif request_id is not None:
            conversation = opened.get(request_id, f"request:{request_id}")
        else:
            conversation = f"sender:{head.sender or envelope.mail_from.lower()}".replace("\x00", "")[:400]
        if head.message_id:
            known[head.message_id] = conversation
        keyed.append(Keyed(conversation, head.message_id))
    return keyed


def _openers(session: Session, request_ids: set[int]) -> dict[int, str]:
    """The conversation of the message that opened each request (its ``root_message_id``), where it
    came in by mail."""
    if not request_ids:
        return {}
    return {request_id: conversation for request_id, conversation in session.execute(
        select(Request.id, Inbound.conversation).join(Inbound, Inbound.message_id == Request.root_message_id)
        .where(Request.id.in_(request_ids), Inbound.conversation != ""))}


def _by_token(settings: Settings, envelope: Envelope, head: Heads) -> int | None:
    """The request a valid reply token names, in the envelope or in To/Cc."""
    for address in [*envelope.rcpt_tos, *head.recipients]:
        local, _, domain = address.lower().partition("@")
        mailbox, plus, token = local.partition("+")
        if plus and domain == settings.domain and settings.mailbox_for(address) is not None:
            named = verify_reply_token(settings.secret_key, token, mailbox)
            if named is not None:
                return named.request_id
    return None
