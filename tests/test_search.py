"""``gateway requests list --search`` on both databases: the words of a comment through the full-text
index of migration 0006, the subject, and the request's number."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.presenters import load_requests
from gateway.context import Context, open_context
from gateway.helpdesk import Author, add_comment, open_request, upsert_person
from gateway.settings import Mailbox, Settings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def context(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Context]:
    url = "" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="s" * 40, database_url=url,
                                   mailboxes=(Mailbox("support@shop.example"),)))
    yield opened
    opened.engine.dispose()


def _request(context: Context, subject: str, text: str) -> int:
    with context.sessions.begin() as session:
        person = upsert_person(session, "jean@client.example", name="Jean Dupont")
        request, requester = open_request(session, context.settings.mailboxes[0], subject, person, None)
        add_comment(session, request, Author(person.email, "requester", requester), text, visibility="public")
        session.flush()
        return request.id


def test_search_finds_the_words_of_a_comment_the_subject_and_the_number(context: Context) -> None:
    damaged = _request(context, "Colis", "Le carton est arrivé déchiré, la boîte écrasée.")
    invoice = _request(context, "Facture en double", "Merci de vérifier.")

    def found(words: str) -> list[int]:
        with context.sessions() as session:
            return [r.id for r in load_requests(session, search=words)]

    assert found("carton") == [damaged]
    assert found("boîte carton") == [damaged], "every word, in any order"
    assert found("carton facture") == [], "not one word of each"
    assert found("FACTURE") == [invoice], "the subject, any case"
    assert found(f"#{invoice}") == [invoice]
    assert found("dupont") == [invoice, damaged], "the customer's name, newest first"
    assert found('"; DROP TABLE comments; --') == [], "words, never SQL or a query language"
    if context.engine.dialect.name == "sqlite":
        assert found("dechire") == [damaged], "accents folded"
