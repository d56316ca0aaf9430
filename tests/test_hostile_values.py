"""Hostile values reach the database cut to fit, on SQLite and on PostgreSQL alike: a NUL byte, a name
or an address longer than its column, a Message-ID of 2,000 characters, MIME nested a thousand deep.
Each message is applied (not degraded, not failed), its oddities recorded as defects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.context import Context, open_context
from gateway.intake.admission import store
from gateway.models import Comment, Participant, Request
from gateway.pipeline.process import process_safely
from gateway.settings import Mailbox, Settings


def _nested(depth: int) -> bytes:
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(depth))
    closing = b"".join(b"--b%d--\r\n" % i for i in reversed(range(depth)))
    return opening + b"Content-Type: text/plain\r\n\r\nTout au fond.\r\n" + closing


HEAD = b"To: support@shop.example\r\nMIME-Version: 1.0\r\n"
CORPUS = {
    "NUL bytes": b"From: Jean\x00 <jean@client.example>\r\nSubject: Colis\x00 perdu\r\n" + HEAD
                 + b"\r\nBonjour\x00, mon colis.\r\n",
    "a long display name": b"From: " + b"Jean " * 60 + b"<jean@client.example>\r\nSubject: Nom\r\n" + HEAD
                           + b"\r\nx\r\n",
    "a 330-character address": b"From: " + b"j" * 300 + b"@client.example\r\nSubject: Adresse\r\n" + HEAD
                               + b"\r\nx\r\n",
    "a 2,000-character Message-ID": b"From: jean@client.example\r\nSubject: Id\r\nMessage-ID: <" + b"m" * 2000
                                    + b"@client.example>\r\n" + HEAD + b"\r\nx\r\n",
    "MIME a thousand deep": b"From: jean@client.example\r\nSubject: Profond\r\n" + HEAD + _nested(1000),
    "a 600-character file name": b"From: jean@client.example\r\nSubject: Fichier\r\n" + HEAD
                                 + b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: application/"
                                 + b"x" * 300 + b"\r\nContent-Disposition: attachment; filename=\"" + b"f" * 600
                                 + b".pdf\"\r\n\r\n%PDF\r\n--z--\r\n",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def context(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", database_url=url,
                                    mailboxes=(Mailbox("support@shop.example"),)))
    yield context
    context.engine.dispose()


@pytest.mark.parametrize("name", CORPUS)
def test_a_hostile_value_is_kept_cut_to_fit_and_the_message_applied(context: Context, name: str) -> None:
    outcome = process_safely(context, store(context, CORPUS[name], source="smtp", mailbox="support@shop.example",
                                            envelope_from="bounce@client.example"))
    assert outcome.status == "processed", outcome.decision
    with context.sessions() as session:
        request = session.get(Request, outcome.request_id)
        assert request is not None and "\x00" not in request.subject
        [comment] = session.scalars(select(Comment).where(Comment.request_id == request.id)).all()
        assert "\x00" not in comment.text
        for participant in session.scalars(select(Participant)):
            assert len(participant.email) <= 254 and len(participant.name) <= 200
        if name == "MIME a thousand deep":
            assert "Tout au fond." in comment.text and "1000 multipart parts" in outcome.decision
        if name == "a 600-character file name":
            [attached] = comment.attachments
            assert len(attached.filename) == 255 and attached.filename.endswith(".pdf")
        if name == "a 330-character address":
            assert comment.author_email == "bounce@client.example", "From named no one: the envelope sender"
