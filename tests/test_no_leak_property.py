"""Property: whatever anyone writes, in any order, nothing private reaches the customer.

Random sequences of comments by random roles (customer, coordinators, supplier, observer,
a stranger using the customer's reply address), with random #private / #public / #note,
go through the real pipeline (store, then process); then no private comment, note or
unverified comment may appear in any mail written for the customer.
"""

from __future__ import annotations

import email
import email.policy
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.context import open_context
from gateway.helpdesk import find_person, join, upsert_person
from gateway.inbound.accept import store
from gateway.inbound.process import process
from gateway.models import Comment, Outbox, Participant, Request
from gateway.settings import Mailbox, Settings
from gateway.tokens import mint_reply_token

CUSTOMER = "client@example.org"
AUTHORS = {
    "customer": CUSTOMER,
    "alice": "alice@shop.example",
    "bob": "bob@shop.example",
    "supplier": "factory@supplier.example",
    "observer": "watcher@partner.example",
    "stranger": "stranger@evil.example",
}
COMMANDS = ["", "#private\n", "#public\n", "#note "]

steps = st.lists(st.tuples(st.sampled_from(sorted(AUTHORS)), st.sampled_from(COMMANDS)), min_size=1, max_size=12)


def _token_for(context_sessions: object, request_id: int, email_address: str, secret: str) -> str:
    with context_sessions() as session:  # type: ignore[operator]
        participant = session.scalars(select(Participant).where(
            Participant.request_id == request_id, Participant.email == email_address)).one()
        return mint_reply_token(secret, "support", request_id, participant.id)


def _mail(sender: str, to: str, body: str, number: int) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: Re: [#1] Demande\r\nMessage-ID: <step{number}@test>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_no_private_note_or_unverified_text_ever_reaches_the_customer(sequence: list[tuple[str, str]]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="leak"))
    config = Settings(home=folder, data_dir=folder / "var", secret_key="property",
                      mailboxes=(Mailbox("support@shop.example", "helpdesk"),))
    context = open_context(config)
    with context.sessions.begin() as session:
        for who in ("alice", "bob"):
            upsert_person(session, AUTHORS[who], role="coordinator")
        upsert_person(session, AUTHORS["supplier"], role="supplier")
    process(context, store(context, _mail(CUSTOMER, "support@shop.example", "Bonjour, une question.", 0),
                           source="smtp", mailbox="support@shop.example"))
    with context.sessions.begin() as session:
        request = session.get(Request, 1)
        assert request is not None
        join(session, request, AUTHORS["supplier"], role="supplier", person=find_person(session, AUTHORS["supplier"]))
        join(session, request, AUTHORS["observer"], role="observer", mail_only=True)
        for who in ("alice", "bob"):
            join(session, request, AUTHORS[who], role="coordinator", person=find_person(session, AUTHORS[who]))

    for number, (who, command) in enumerate(sequence, start=1):
        owner = CUSTOMER if who == "stranger" else AUTHORS[who]
        token = _token_for(context.sessions, 1, owner, "property")
        body = f"{command}marker{number} texte numero {number} ecrit par {who} dans la demande"
        process(context, store(context, _mail(AUTHORS[who], f"support+{token}@shop.example", body, number),
                               source="smtp", mailbox="support@shop.example"))

    with context.sessions() as session:
        hidden = [c.text for c in session.scalars(select(Comment)) if c.visibility != "public" or c.unverified_sender]
        to_customer = session.scalars(select(Outbox).where(Outbox.recipient == CUSTOMER,
                                                           Outbox.status != "held")).all()
        texts = []
        for row in to_customer:
            message = email.message_from_bytes(row.raw, policy=email.policy.default)
            texts.append(str(message.get_body(preferencelist=("plain",)).get_content()))  # type: ignore[union-attr]
    for secret in hidden:
        marker = next(word for word in secret.split() if word.startswith("marker"))
        assert all(marker + " " not in text for text in texts), f"{secret!r} reached the customer"
    context.engine.dispose()
