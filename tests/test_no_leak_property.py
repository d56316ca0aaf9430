"""Property: whatever anyone writes, in any order, nothing private reaches the customer, and what the
team makes public does.

Random sequences of comments by random people with random ``#private`` / ``#public`` / ``#note`` go
through the real pipeline (store, then process). What must stay hidden is decided here, from the
inputs and the rules of DESIGN (a private or note comment, the team's "pre-checked box" after a
private one, anything from someone writing with another's reply address or a void one), never read
back from what the product stored. Then no hidden text may be in any mail for the customer, no
mail for the customer may have been held (a hold would hide a visibility bug), and every comment
the team made public must have reached the customer.
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
from gateway.intake.admission import store
from gateway.models import Outbox, Participant, Request
from gateway.pipeline.process import process
from gateway.settings import Mailbox, Settings
from gateway.tokens import mint_reply_token

CUSTOMER = "client@example.org"
SECRET_KEY = "property-" + "k" * 32
# who writes: (From, whose reply address, writes as the team with their own token)
ACTORS = {
    "customer": (CUSTOMER, CUSTOMER, False),
    "alice": ("alice@shop.example", "alice@shop.example", True),
    "bob": ("bob@shop.example", "bob@shop.example", True),
    "supplier": ("factory@supplier.example", "factory@supplier.example", True),
    "observer": ("watcher@partner.example", "watcher@partner.example", True),
    "stranger with the customer's address": ("stranger@evil.example", CUSTOMER, False),
    "supplier with the customer's address": ("factory@supplier.example", CUSTOMER, False),
    "observer with alice's address": ("watcher@partner.example", "alice@shop.example", False),
    "removed observer": ("gone@partner.example", "gone@partner.example", False),
}
COMMANDS = ["", "#private\n", "#public\n", "#note "]
MAY_NOTE = ("alice", "bob", "supplier")

steps = st.lists(st.tuples(st.sampled_from(sorted(ACTORS)), st.sampled_from(COMMANDS)), min_size=1, max_size=12)


def expected(sequence: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
    """The markers that must stay hidden from the customer and those that must reach them, by the rules
    of DESIGN alone."""
    hidden, shown, sticky = set(), set(), False
    for number, (who, command) in enumerate(sequence, start=1):
        marker = f"marker{number}"
        if who == "customer":
            continue  # the customer's own words: never mailed back, never secret
        if not ACTORS[who][2] or (command == "#note " and who not in MAY_NOTE):
            hidden.add(marker)  # unverified, or refused whole (an observer may not write #note)
        elif command == "#note ":
            hidden.add(marker)
        elif command == "#private\n" or (command == "" and sticky):
            hidden.add(marker)
            sticky = True
        else:
            shown.add(marker)
            sticky = False
    return hidden, shown


def _token_for(context_sessions: object, request_id: int, email_address: str) -> str:
    with context_sessions() as session:  # type: ignore[operator]
        participant = session.scalars(select(Participant).where(
            Participant.request_id == request_id, Participant.email == email_address)).one()
        return mint_reply_token(SECRET_KEY, "support", request_id, participant.id)


def _mail(sender: str, to: str, body: str, number: int) -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: Re: [#1] Demande\r\nMessage-ID: <step{number}@test>\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_nothing_hidden_reaches_the_customer_and_what_is_public_does(sequence: list[tuple[str, str]]) -> None:
    folder = Path(tempfile.mkdtemp(prefix="leak"))
    config = Settings(home=folder, data_dir=folder / "var", secret_key=SECRET_KEY, mails_per_hour=100,
                      mailboxes=(Mailbox("support@shop.example", "helpdesk"),))
    context = open_context(config)
    with context.sessions.begin() as session:
        for coordinator in ("alice@shop.example", "bob@shop.example"):
            upsert_person(session, coordinator, role="coordinator")
        upsert_person(session, "factory@supplier.example", role="supplier")
    process(context, store(context, _mail(CUSTOMER, "support@shop.example", "Bonjour, une question.", 0),
                           source="smtp", mailbox="support@shop.example"))
    with context.sessions.begin() as session:
        request = session.get(Request, 1)
        assert request is not None
        join(session, request, "factory@supplier.example", role="supplier",
             person=find_person(session, "factory@supplier.example"))
        join(session, request, "watcher@partner.example", role="observer", mail_only=True)
        join(session, request, "gone@partner.example", role="observer", mail_only=True).active = False
        for coordinator in ("alice@shop.example", "bob@shop.example"):
            join(session, request, coordinator, role="coordinator", person=find_person(session, coordinator))

    for number, (who, command) in enumerate(sequence, start=1):
        sender, address_of, _team = ACTORS[who]
        token = _token_for(context.sessions, 1, address_of)
        body = f"{command}marker{number} texte numero {number} ecrit par {who.split()[0]} dans la demande"
        process(context, store(context, _mail(sender, f"support+{token}@shop.example", body, number),
                               source="smtp", mailbox="support@shop.example"))

    with context.sessions() as session:
        to_customer = session.scalars(select(Outbox).where(Outbox.recipient == CUSTOMER)).all()
        texts = [str(email.message_from_bytes(row.raw, policy=email.policy.default)  # type: ignore[union-attr]
                     .get_body(preferencelist=("plain",)).get_content()) for row in to_customer]
    assert [row.status for row in to_customer if row.status == "held"] == [], "no customer mail is held"
    received = {word for text in texts for word in text.split() if word.startswith("marker")}
    hidden, shown = expected(sequence)
    assert not hidden & received, f"hidden comments reached the customer: {sorted(hidden & received)}"
    assert shown <= received, f"public comments never reached the customer: {sorted(shown - received)}"
    context.engine.dispose()
