"""The mails of a transaction: inserted together when it commits, seen by its own queries of the outbox
before that, and forgotten when it rolls back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from gateway.context import Context, open_context
from gateway.helpdesk import Author, add_comment, change_visibility, join, open_request, upsert_person
from gateway.models import Comment, MessageRef, Outbox, Person, Request
from gateway.notify import Mailer, UnwrittenMail, notify_comment
from gateway.settings import Mailbox, Settings
from gateway.transaction import mailing


@pytest.fixture
def context(tmp_path: Path) -> Context:
    return open_context(Settings(home=tmp_path, data_dir=tmp_path / "var",
                                 mailboxes=(Mailbox("support@shop.example"),)))


def _write(mailer: Mailer, recipient: str, topic: str = "") -> None:
    mailer.write("command_error", "sender", {"bad": [], "subject": "question", "original_attached": False},
                 mailbox="support@shop.example", recipient=recipient, reply_to="support@shop.example", person=None,
                 topic=topic)


def test_the_mails_of_a_transaction_are_inserted_together_just_before_it_commits(context: Context) -> None:
    inserts: list[str] = []

    def count(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("INSERT INTO outbox"):
            inserts.append(statement.split()[2])

    event.listen(context.engine, "before_cursor_execute", count)
    with mailing(context) as (session, mailer):
        for n in range(3):
            _write(mailer, f"c{n}@client.example")
        assert not inserts, "nothing is inserted while the transaction writes"
    assert inserts == ["outbox", "outbox_bodies"], "one statement for the rows, one for their bytes"
    with context.sessions() as session:
        stored = session.execute(select(Outbox.id, Outbox.recipient).order_by(Outbox.id)).all()
    assert [(row.id, row.recipient) for row in stored] == list(zip(
        mailer.outbox_ids, [f"c{n}@client.example" for n in range(3)], strict=True))


def test_a_commit_with_mails_not_written_is_refused_and_keeps_nothing(context: Context) -> None:
    with pytest.raises(UnwrittenMail, match="1 mails asked for and not written"):
        with context.sessions.begin() as session:
            upsert_person(session, "bob@client.example")
            _write(Mailer(session, context.settings), "a@client.example")
    with context.sessions() as session:
        assert session.scalar(select(func.count(Outbox.id))) == 0
        assert session.scalar(select(func.count(Person.id))) == 0, "the change is rolled back with its mails"


def test_a_query_of_the_outbox_sees_the_mails_written_before_it_in_the_transaction(context: Context) -> None:
    with context.sessions.begin() as session:
        mailer = Mailer(session, context.settings)
        _write(mailer, "a@client.example", topic="command-error:x")
        assert mailer.recent("a@client.example", topic="command-error:x") == 1
        assert session.scalar(select(func.count(Outbox.id))) == 1


def test_a_rolled_back_transaction_sends_and_keeps_none_of_its_mails(context: Context) -> None:
    with context.sessions() as session:
        mailer = Mailer(session, context.settings)
        _write(mailer, "a@client.example")
        session.rollback()
        _write(mailer, "b@client.example")
        mailer.write_outbox()
        session.commit()
        sent = session.scalars(select(Outbox.recipient).where(Outbox.id.in_(mailer.outbox_ids))).all()
        assert sent == ["b@client.example"]
        assert session.scalar(select(func.count(Outbox.id))) == 1
        assert session.scalar(select(func.count(MessageRef.id))) == 0, "a mail about no request threads nothing"


SECRET = "le fournisseur accepte un rabais de quinze pour cent si le client insiste encore"


@pytest.mark.parametrize("change, held", [
    ("stored private", True),
    ("made private in the transaction", True),
    ("made public in the transaction", False),
    ("note added in the transaction", True),
], ids=lambda value: str(value))
def test_a_customer_mail_repeating_what_is_secret_as_the_transaction_leaves_it_is_held(
        context: Context, change: str, held: bool) -> None:
    mailbox = context.settings.mailboxes[0]
    with context.sessions.begin() as session:
        customer = upsert_person(session, "client@example.org")
        request, _requester = open_request(session, mailbox, "Question", customer, "<q1@example.org>")
        alice = upsert_person(session, "alice@shop.example", role="coordinator")
        join(session, request, alice.email, role="coordinator", person=alice)
        stored = add_comment(session, request, Author(alice.email, "coordinator", None), SECRET,
                             visibility="public" if change == "made private in the transaction" else "private")
        session.flush()
        request_id, stored_id = request.id, stored.id
    with mailing(context) as (session, mailer), session.no_autoflush:  # as processing: nothing flushed till the end
        request = session.get_one(Request, request_id)  # its comments are not loaded
        alice_author = Author("alice@shop.example", "coordinator", None)
        if change.startswith("made"):
            change_visibility(session, stored_id, change.split()[1])
        if change.startswith("note"):
            session.get_one(Comment, stored_id).visibility = "public"
            add_comment(session, request, alice_author, f"Note : {SECRET}", visibility="note")
        reply = add_comment(session, request, alice_author, f"Bonjour, voici notre offre. {SECRET}",
                            visibility="public")
        notify_comment(mailer, request, reply, alice_author, [])
    with context.sessions() as session:
        statuses = session.scalars(select(Outbox.status).where(Outbox.recipient == "client@example.org")).all()
    assert statuses == ["held" if held else "pending"]
