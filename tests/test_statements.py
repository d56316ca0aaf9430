"""Bank statements: CAMT.053 and CSV credits, matched to orders and recorded once."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gateway.context import Context, open_context
from gateway.notify import Mailer
from gateway.orders.bank import import_credits
from gateway.orders.models import Order
from gateway.orders.placing import OrderDraft, create_order, validate_order
from gateway.payments.statements import StatementError, read_statement
from gateway.settings import Mailbox, Settings

CAMT = Path(__file__).parent / "fixtures" / "camt053.xml"


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="s" * 40,
                                    mailboxes=(Mailbox("orders@shop.example", "orders"),)))
    yield context
    context.engine.dispose()


def _orders(context: Context, session: Session, *prices: str) -> list[Order]:
    made = []
    for price in prices:
        draft = validate_order(session, context.settings, {
            "customer": {"email": "jean@client.example"}, "subject": "Logo", "payment_method": "transfer",
            "items": [{"description": "Logo", "quantity": 1, "unit_price": price}]})
        assert isinstance(draft, OrderDraft)
        mailer = Mailer(session, context.settings)
        made.append(create_order(session, context.settings, mailer, draft))
        mailer.write_outbox()
    return made


def test_camt053_gives_the_booked_credits_only() -> None:
    credits = read_statement(CAMT.read_bytes())
    assert [(c.entry_id, c.amount, c.reference) for c in credits] == [
        ("BANK-0001", Decimal("120.00"), "Commande #1 logo"),
        ("BANK-0002/E2E-77", Decimal("60.00"), "VIREMENT COMMANDE 2 MERCI"),
        ("BANK-0005", Decimal("15.50"), "Remboursement loyer 12/2026"),
    ], "the debit and the pending credit are not money received"


def test_a_statement_imported_twice_records_each_payment_once(context: Context) -> None:
    with context.sessions.begin() as session:
        first, second = _orders(context, session, "120.00", "60.00")
        results = import_credits(session, read_statement(CAMT.read_bytes()))
        assert [(r.order, r.outcome) for r in results] == [
            (first.number, "recorded"), (second.number, "recorded"), (None, "names no order")]
        assert (first.payment_status, second.payment_status) == ("paid", "paid")
    with context.sessions.begin() as session:
        again = import_credits(session, read_statement(CAMT.read_bytes()))
        assert [r.outcome for r in again] == ["already recorded", "already recorded", "names no order"]
        assert [len(session.get_one(Order, n).payments) for n in (1, 2)] == [1, 1]


def test_csv_lines_with_and_without_header_and_entry_ids(context: Context) -> None:
    text = ("date,amount,currency,reference,entry_id\n2026-12-07,120.00,EUR,Commande #1,E1\n"
            "2026-12-07,-30.00,EUR,Frais,E2\n2026-12-07,\"60,00\",EUR,cmd 2 merci,\n")
    credits = read_statement(text.encode())
    assert [(c.entry_id, c.amount, c.reference) for c in credits][0] == ("E1", Decimal("120.00"), "Commande #1")
    assert len(credits) == 2 and credits[1].entry_id.startswith("sha256:"), "no id: the fields' hash"
    assert read_statement(text.split("\n", 1)[1].encode())[0].entry_id == "E1", "no header line"
    with context.sessions.begin() as session:
        _orders(context, session, "120.00", "60.00")
        assert [r.outcome for r in import_credits(session, credits)] == ["recorded", "recorded"]


@pytest.mark.parametrize("data, error", [
    (b"date,amount\n2026-12-07,12\n", "line 2: 2 columns"),
    (b"2026-12-07,douze,EUR,#1\n", "not an amount"),
    (b"<Document><Stmt>", "not a CAMT.053 statement"),
])
def test_a_file_that_is_not_a_statement_is_refused_with_where(data: bytes, error: str) -> None:
    with pytest.raises(StatementError, match=error):
        read_statement(data)


def test_an_xml_entity_never_reads_a_file_of_the_machine(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = CAMT.read_text().replace('<?xml version="1.0" encoding="UTF-8"?>',
                                   f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret}">]>')
    xxe = xxe.replace("Commande #1 logo", "&x; #1")
    credits = read_statement(xxe.encode())
    assert all("TOP-SECRET" not in c.reference for c in credits)
