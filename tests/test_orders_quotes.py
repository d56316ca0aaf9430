"""Quotes: versions that replace each other, links that cannot be forged, one decision, expiry."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.context import Context, open_context
from gateway.helpdesk import open_request, upsert_person
from gateway.models import Deadline, Outbox
from gateway.notify import Mailer
from gateway.orders.card import OrderError, ensure_order
from gateway.orders.due import HANDLERS
from gateway.orders.lifecycle import cancel_order, decline_order
from gateway.orders.models import Order, Quote
from gateway.orders.quote_page import (
    QuoteDecision,
    QuoteProblem,
    QuoteView,
    decide,
    follow_up,
    quote_for_token,
    unfollowed,
)
from gateway.orders.quotes import (
    QuoteLine,
    ambiguous_quote_lines,
    create_quote,
    expire_quotes,
    read_quote_lines,
    withdraw_quote,
)
from gateway.orders.timeline import ACCEPTANCE
from gateway.settings import Mailbox, OrderTimes, Settings
from gateway.tokens import mint_quote_token, verify_quote_token
from gateway.transaction import mailing

COORDINATOR = "alice@shop.example"


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="test-secret", site_name="Boutique Test",
                        base_url="https://shop.example",
                        mailboxes=(Mailbox("support@shop.example"), Mailbox("orders@shop.example", "orders")))
    context = open_context(settings)
    with context.sessions.begin() as session:
        upsert_person(session, COORDINATOR, role="coordinator")
    yield context
    context.engine.dispose()


@pytest.fixture
def order(context: Context, session: Session) -> Order:
    customer = upsert_person(session, "jean@client.example", name="Jean", locale="en")
    request, _ = open_request(session, Mailbox("orders@shop.example", "orders"), "Site vitrine", customer, "<a@x>")
    return ensure_order(session, request, context.settings)


def quote(context: Context, session: Session, order: Order, amount: str = "450", **kwargs: object) -> Quote:
    """A quote sent, in the database as its own transaction would leave it (a click reads it from there)."""
    mailer = Mailer(session, context.settings)
    sent = create_quote(session, context.settings, mailer, order, author=COORDINATOR,
                        amount=Decimal(amount), **kwargs)  # type: ignore[arg-type]
    mailer.write_outbox()
    return sent


def token_of(context: Context, quote: Quote) -> str:
    return mint_quote_token(context.settings.secret_key, quote.id, quote.version)


def test_a_quote_mails_the_customer_a_link_and_waits_for_their_answer(
        context: Context, session: Session, order: Order) -> None:
    sent = quote(context, session, order)
    assert (sent.version, sent.status, sent.currency) == (1, "open", "EUR")
    assert order.request.status == "in-progress"
    assert "awaiting response" in [label.name for label in order.request.labels]
    assert sent.valid_until - sent.created_at == timedelta(days=30)
    [mail] = session.scalars(select(Outbox).where(Outbox.template == "quote_sent.customer"))
    link = re.search(r"https://shop\.example/quote/([A-Za-z0-9_-]+)", mail.raw.decode())
    assert link is not None and link.group(1) == token_of(context, sent)


def test_quote_links_are_url_safe_and_name_one_version_of_one_quote() -> None:
    token = mint_quote_token("secret", 12, 3)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    named = verify_quote_token("secret", token)
    assert named is not None and (named.quote_id, named.version) == (12, 3)
    assert verify_quote_token("other-secret", token) is None
    assert verify_quote_token("secret", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert verify_quote_token("secret", mint_quote_token("secret", 12, 4)[:10] + token[10:]) is None
    assert verify_quote_token("secret", "../../etc/passwd") is None


def test_a_new_quote_replaces_the_open_one_and_the_old_link_says_by_what(
        context: Context, session: Session, order: Order, mailer: Mailer) -> None:
    first = quote(context, session, order, "450")
    second = quote(context, session, order, "420")
    assert (first.status, first.replaced_by, second.version) == ("replaced", second, 2)
    old = quote_for_token(session, context.settings, token_of(context, first))
    assert isinstance(old, QuoteProblem) and (old.kind, old.http_status) == ("replaced", 410)
    assert old.view is not None and old.view.replaced_by is not None
    assert (old.view.replaced_by.version, old.view.replaced_by.amount) == (2, "420.00")
    current = quote_for_token(session, context.settings, token_of(context, second))
    assert isinstance(current, QuoteView) and current.is_open and current.locale == "en"
    outcome = decide(session, context.settings, mailer, token_of(context, first), True)
    assert isinstance(outcome, QuoteProblem) and first.status == "replaced", "an old link decides nothing"


def test_accepting_a_quote_sets_the_price_and_brings_the_order_back_unread(
        context: Context, session: Session, order: Order, mailer: Mailer) -> None:
    sent = quote(context, session, order, "450")
    order.request.unread = False
    outcome = decide(session, context.settings, mailer, token_of(context, sent), True)
    assert isinstance(outcome, QuoteDecision) and (outcome.outcome, outcome.changed) == ("accepted", True)
    assert sent.status == "accepted" and sent.decided_at is not None
    assert order.total == Decimal("0.00") and mailer.outbox_ids == [], "only the decision so far"
    assert unfollowed(session) == [sent.id]
    assert follow_up(session, context.settings, mailer, sent.id)
    assert not follow_up(session, context.settings, mailer, sent.id), "followed up once"
    assert unfollowed(session) == []
    assert order.total == Decimal("450.00") and order.request.unread
    assert "awaiting response" not in [label.name for label in order.request.labels]
    assert order.request.events[-1].kind == "quote-accepted"
    assert [row.template for row in session.scalars(select(Outbox).where(Outbox.id.in_(mailer.outbox_ids)))] == [
        "quote_decided.coordinator"]


def test_deciding_twice_keeps_the_first_outcome(context: Context, session: Session, order: Order,
        mailer: Mailer) -> None:
    sent = quote(context, session, order)
    first = decide(session, context.settings, mailer, token_of(context, sent), False, "Trop cher")
    again = decide(session, context.settings, mailer, token_of(context, sent), True)
    assert isinstance(first, QuoteDecision) and isinstance(again, QuoteDecision)
    assert (again.outcome, again.changed) == ("declined", False)
    for decision in (first, again):
        if decision.changed:
            follow_up(session, context.settings, mailer, decision.quote_id)
    assert sent.status == "declined" and sent.reason == "Trop cher" and order.total == Decimal("0.00")
    assert len(mailer.outbox_ids) == 1, "the coordinators are told once"


def test_a_forged_or_unknown_link_is_refused_and_changes_nothing(
        context: Context, session: Session, order: Order, mailer: Mailer) -> None:
    sent = quote(context, session, order)
    forged = mint_quote_token("another-secret", sent.id, sent.version)
    unknown = mint_quote_token(context.settings.secret_key, sent.id + 99, 1)
    other_version = mint_quote_token(context.settings.secret_key, sent.id, 2)
    for token, status in ((forged, 403), (unknown, 404), (other_version, 404), ("x", 403)):
        for result in (quote_for_token(session, context.settings, token),
                       decide(session, context.settings, mailer, token, True)):
            assert isinstance(result, QuoteProblem) and result.http_status == status
    assert sent.status == "open" and mailer.outbox_ids == []


def test_reading_a_link_changes_nothing_even_past_its_validity(
        context: Context, session: Session, order: Order) -> None:
    sent = quote(context, session, order)
    sent.valid_until = utcnow() - timedelta(minutes=1)
    session.flush()
    shown = quote_for_token(session, context.settings, token_of(context, sent))
    assert isinstance(shown, QuoteProblem) and shown.kind == "expired" and shown.http_status == 410
    assert sent.status == "open" and not session.dirty and not session.new


def test_an_expired_quote_cannot_be_accepted_and_the_sweep_expires_it_once(
        context: Context, session: Session, order: Order, mailer: Mailer) -> None:
    sent = quote(context, session, order)
    sent.valid_until = utcnow() - timedelta(minutes=1)
    assert expire_quotes(session, context.settings, mailer) == [sent.id]
    assert expire_quotes(session, context.settings, mailer) == []
    assert sent.status == "expired" and order.request.unread
    outcome = decide(session, context.settings, mailer, token_of(context, sent), True)
    assert isinstance(outcome, QuoteProblem) and outcome.kind == "expired" and order.total == Decimal("0.00")


def test_a_withdrawn_quote_is_gone_and_the_customer_told(context: Context, session: Session, order: Order,
        mailer: Mailer) -> None:
    sent = quote(context, session, order)
    withdraw_quote(context.settings, mailer, order, COORDINATOR)
    result = quote_for_token(session, context.settings, token_of(context, sent))
    assert isinstance(result, QuoteProblem) and result.kind == "withdrawn"
    assert session.scalars(select(Outbox).where(Outbox.template == "quote_withdrawn.customer")).first()
    with pytest.raises(OrderError, match="no open quote"):
        withdraw_quote(context.settings, mailer, order, COORDINATOR)


@pytest.mark.parametrize(("line", "read", "ambiguous"), [
    ("1 x Canapé d'angle : 1 500 €", QuoteLine("Canapé d'angle", 1, Decimal("1500.00")), False),
    ("2 x Pack 3 : 150", QuoteLine("Pack 3", 2, Decimal("150.00")), False),
    ("1 x Canapé 1\u202f500,00\xa0€", QuoteLine("Canapé", 1, Decimal("1500.00")), False),  # pasted from a mail
    ("1 x Table 80 cm 150", QuoteLine("Table 80 cm", 1, Decimal("150.00")), False),
    ("1 x Canapé d'angle en lin 1 500 €", QuoteLine("Canapé d'angle en lin", 1, Decimal("1500.00")), True),
    ("2 x Pack 3 150", QuoteLine("Pack", 2, Decimal("3150.00")), True),
    ("1 x Canapé : 1 500.00", QuoteLine("Canapé", 1, Decimal("1500.00")), False),  # a decimal point, too
    ("1 x Canapé 1 500.00 €", QuoteLine("Canapé", 1, Decimal("1500.00")), True),
])
def test_a_price_grouped_by_thousands_is_read_and_one_that_reads_two_ways_is_named(
        line: str, read: QuoteLine, ambiguous: bool) -> None:
    """A new user's "1 500 €" became 500, silently, and the customer's quote was 1,000 short: a price
    grouped as French writes it is read whole, and where a plain space leaves it to the reader (a pack
    of 3 at 150, or 3,150?), the #quote is refused with the line named."""
    assert read_quote_lines(line) == [read]
    assert ambiguous_quote_lines(line) == ([line] if ambiguous else [])


def test_a_hostile_item_line_costs_its_length_once() -> None:
    """The lazy description backtracked over a 100 KB line of numbers for a minute: past an item line's
    length, a line is text."""
    hostile = "1 x a" + " 111" * 25_000 + " z"
    assert read_quote_lines(hostile) == [] and ambiguous_quote_lines(hostile) == []


def test_item_lines_make_the_quote_and_its_amount(context: Context, session: Session, order: Order,
        mailer: Mailer) -> None:
    lines = read_quote_lines("Voici notre proposition :\n2 x Page supplémentaire 150\n1 x Logo 99,50 EUR\nMerci")
    assert lines == [QuoteLine("Page supplémentaire", 2, Decimal("150.00")), QuoteLine("Logo", 1, Decimal("99.50"))]
    sent = create_quote(session, context.settings, mailer, order, author=COORDINATOR,
                        lines=lines)
    assert sent.amount == Decimal("399.50") and [i.description for i in sent.items] == ["Page supplémentaire", "Logo"]
    with pytest.raises(OrderError, match="add up to 399.50"):
        quote(context, session, order, "400", lines=lines)
    with pytest.raises(OrderError, match="at most 9999999999.99"):
        create_quote(session, context.settings, mailer, order, author=COORDINATOR,
                     lines=read_quote_lines("999999 x Ferme 9999999999"))
    outcome = decide(session, context.settings, mailer, token_of(context, sent), True)
    assert isinstance(outcome, QuoteDecision) and follow_up(session, context.settings, mailer, outcome.quote_id)
    assert [(i.quantity, i.description) for i in order.items] == [(2, "Page supplémentaire"), (1, "Logo")]


def test_a_decision_whose_follow_up_was_lost_is_followed_up_at_the_next_start(context: Context) -> None:
    from gateway.service.broker import configure, start_workers
    from gateway.service.sweep import requeue

    with context.sessions.begin() as session:
        upsert_person(session, COORDINATOR, role="coordinator")
        customer = upsert_person(session, "jean@client.example", name="Jean", locale="en")
        request, _ = open_request(session, Mailbox("orders@shop.example", "orders"), "Site", customer, "<a@x>")
        sent = quote(context, session, ensure_order(session, request, context.settings))
        session.flush()
        token = token_of(context, sent)
    with mailing(context) as (session, mailer):  # the click; the process dies before the worker runs
        assert isinstance(decide(session, context.settings, mailer, token, True), QuoteDecision)
    broker = configure(context.settings)  # the next start
    workers = start_workers(broker, {"inbound": 1, "outbox": 1})
    try:
        assert requeue(context).decisions == 1
        broker.join("inbound", timeout=10_000)
    finally:
        for worker in workers:
            worker.stop()
    with context.sessions() as session:
        assert unfollowed(session) == []
        assert session.scalars(select(Outbox).where(Outbox.template == "quote_decided.coordinator")).one()
        assert session.scalars(select(Order)).one().total == Decimal("450.00")


@pytest.mark.parametrize("act", ["withdraw", "quote again", "cancel", "decline", "the acceptance deadline"])
def test_a_decision_committed_meanwhile_is_never_written_over(tmp_path: Path, postgres_url: str, act: str) -> None:
    """On PostgreSQL the customer accepts on the web host while a processor holds the order read, open quote
    and all: the coordinator's ``#withdraw``, a new version, a cancellation, a decline or the sweep's expiry
    must not write "open"'s successor over the acceptance (never followed up, then): the command is
    refused, and the sweep's cancellation of an order not accepted in time does not happen."""
    orders = Mailbox("orders@shop.example", "orders", times=OrderTimes(acceptance_hours=1))
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="test-secret", database_url=postgres_url,
                        base_url="https://shop.example", mailboxes=(orders,))
    context = open_context(settings)
    try:
        with mailing(context) as (session, mailer):
            upsert_person(session, COORDINATOR, role="coordinator")
            customer = upsert_person(session, "jean@client.example", name="Jean")
            request, _ = open_request(session, settings.mailboxes[0], "Site vitrine", customer, "<race@x>")
            order = ensure_order(session, request, settings)
            sent = create_quote(session, settings, mailer, order, author=COORDINATOR, amount=Decimal("450"))
        number, token = order.number, mint_quote_token(settings.secret_key, sent.id, sent.version)
        with mailing(context) as (session, mailer):
            order = session.get_one(Order, number)
            assert order.open_quote is not None  # read by the processor's transaction, still open here
            with mailing(context) as (web, web_mailer):
                assert isinstance(decide(web, settings, web_mailer, token, True), QuoteDecision)
            if act == "the acceptance deadline":
                deadline = Deadline(request_id=number, kind=ACCEPTANCE, due_at=utcnow())
                assert HANDLERS[ACCEPTANCE](session, settings, mailer, deadline) == \
                    "not cancelled: quote v1 was accepted meanwhile: see the order again"
            else:
                with pytest.raises(OrderError, match="accepted meanwhile"):
                    if act == "withdraw":
                        withdraw_quote(settings, mailer, order, COORDINATOR)
                    elif act == "quote again":
                        create_quote(session, settings, mailer, order, author=COORDINATOR, amount=Decimal("500"))
                    elif act == "cancel":
                        cancel_order(settings, mailer, order, COORDINATOR, "trop tard")
                    else:
                        decline_order(mailer, order, COORDINATOR, "trop tard")
        with context.sessions() as session:
            assert [q.status for q in session.scalars(select(Quote))] == ["accepted"]
            assert session.get_one(Order, number).request.status == "in-progress"
    finally:
        context.engine.dispose()
