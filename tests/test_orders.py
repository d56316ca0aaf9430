"""The order domain on SQLite: intake, the order card, confirmation and payment, shipping, statistics."""

from __future__ import annotations

import email
import email.policy
import io
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pypdf
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.context import Context, open_context
from gateway.helpdesk import open_request, upsert_person
from gateway.models import Outbox, Product, Request
from gateway.notify import Mailer
from gateway.orders.card import NotAnOrder, OrderError, ensure_order
from gateway.orders.delivery_note import delivery_note
from gateway.orders.lifecycle import (
    change_payment_method,
    complete_order,
    confirm_order,
    decline_order,
    record_paid,
    ship_order,
)
from gateway.orders.models import Order, Payment
from gateway.orders.placing import FieldError, OrderDraft, create_order, validate_order
from gateway.orders.quotes import create_quote
from gateway.orders.stats import order_stats
from gateway.orders.summaries import order_detail
from gateway.settings import Mailbox, Settings

CUSTOMER = "jean@client.example"
ORDER = {
    "customer": {"email": CUSTOMER, "name": "Jean Dupont", "locale": "fr"},
    "subject": "Site vitrine",
    "items": [{"description": "Page d'accueil", "quantity": 1, "unit_price": "300.00"},
              {"description": "Page supplémentaire", "quantity": 2, "unit_price": "75"}],
    "currency": "EUR",
    "payment_method": "card",
    "tags": ["web"],
}


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="test-secret", site_name="Boutique Test",
                        payment_provider="fake-card",
                        mailboxes=(Mailbox("support@shop.example"), Mailbox("orders@shop.example", "orders")))
    context = open_context(settings)
    with context.sessions.begin() as session:
        upsert_person(session, "alice@shop.example", role="coordinator", locale="fr")
    yield context
    context.engine.dispose()


def mails(session: Session, template: str | None = None) -> list[Outbox]:
    query = select(Outbox).order_by(Outbox.id)
    if template:
        query = query.where(Outbox.template == template)
    return list(session.scalars(query))


def new_order(context: Context, session: Session, **changes: Any) -> Order:
    draft = validate_order(session, context.settings, {**ORDER, **changes})
    assert isinstance(draft, OrderDraft), draft
    mailer = Mailer(session, context.settings)
    order = create_order(session, context.settings, mailer, draft)
    mailer.write_outbox()  # as the transaction that places an order writes its mails
    return order


def test_a_posted_order_opens_a_pending_order_and_tells_the_customer_and_the_coordinators(
        context: Context, session: Session) -> None:
    order = new_order(context, session)
    assert order.request.kind == "order" and order.request.status == "pending"
    assert order.total == Decimal("450.00") and order.payment_status == "unpaid"
    assert [(m.recipient, m.template) for m in mails(session)] == [
        (CUSTOMER, "order_received.customer"), ("alice@shop.example", "order_new.coordinator")]
    received = email.message_from_bytes(mails(session)[0].raw, policy=email.policy.default)
    assert "450,00\xa0€" in received.get_body(("plain",)).get_content(), "money as a French reader writes it"
    assert order.request.comments[0].source == "web", "the order itself is the first comment"


def test_a_bad_order_gets_every_field_error_and_nothing_is_stored(context: Context, session: Session) -> None:
    errors = validate_order(session, context.settings, {
        "customer": {"email": "not-an-address", "name": "n" * 201},
        "items": [{"description": "x", "quantity": 0, "unit_price": 1.5}],
        "currency": "euros", "payment_method": "bitcoin", "colour": "red", "shipping_address": "x" * 500 + " ",
        "note": "a\x00b", "subject": "s" * 301, "card_reference": "c" * 201, "plan": "p" * 201})
    assert isinstance(errors, list)
    assert {e.field for e in errors} == {"colour", "customer.email", "customer.name", "items[0].quantity",
                                         "items[0].unit_price",
                                         "currency", "payment_method", "shipping_address", "note", "subject",
                                         "card_reference", "plan"}
    assert all(isinstance(e, FieldError) and e.message for e in errors)
    assert session.scalar(select(func.count(Request.id))) == 0


def test_amounts_too_large_to_keep_exactly_are_field_errors(context: Context, session: Session) -> None:
    errors = validate_order(session, context.settings, {"customer": {"email": CUSTOMER}, "items": [
        {"description": "x", "quantity": 10 ** 30, "unit_price": "1"},
        {"description": "y", "quantity": 1_000_000, "unit_price": "9999999999.99"},
        {"description": "z", "quantity": 900_000, "unit_price": "10000.00"},
        {"description": "w", "quantity": 900_000, "unit_price": "10000.00"}]})
    assert isinstance(errors, list)
    assert [e.field for e in errors] == ["items[0].quantity", "items[1]", "items"]
    errors = validate_order(session, context.settings, {"customer": {"email": CUSTOMER}, "items": [
        {"description": "v", "quantity": 1, "unit_price": 20130431424569911639033631505607819264}]})
    assert isinstance(errors, list) and [e.field for e in errors] == ["items[0].unit_price"], "a JSON integer too"


def test_an_order_needs_items_unless_it_is_on_quote(context: Context, session: Session) -> None:
    errors = validate_order(session, context.settings, {"customer": {"email": CUSTOMER}})
    assert isinstance(errors, list) and [e.field for e in errors] == ["items"]
    draft = validate_order(session, context.settings, {"customer": {"email": CUSTOMER}, "on_quote": True})
    assert isinstance(draft, OrderDraft) and draft.on_quote


def test_an_item_of_a_product_priced_on_quote_needs_no_price_and_the_order_waits_for_a_quote(
        context: Context, session: Session) -> None:
    session.add_all([Product(sku="SITE", name="Site sur mesure", on_quote=True), Product(sku="LOGO", name="Logo")])
    session.flush()
    draft = validate_order(session, context.settings, {"customer": {"email": CUSTOMER},
                                                       "items": [{"sku": "SITE", "quantity": 1}]})
    assert isinstance(draft, OrderDraft) and draft.on_quote and draft.items[0].unit_price == Decimal("0")
    errors = validate_order(session, context.settings, {"customer": {"email": CUSTOMER},
                                                        "items": [{"sku": "LOGO", "quantity": 1}]})
    assert isinstance(errors, list) and [e.field for e in errors] == ["items[0].unit_price"], "a priced product"


def test_invoice_payment_is_refused_unless_enabled_for_the_customer(context: Context, session: Session) -> None:
    errors = validate_order(session, context.settings, {**ORDER, "payment_method": "invoice"})
    assert isinstance(errors, list) and errors[0].field == "payment_method"
    order = new_order(context, session)
    with pytest.raises(OrderError, match="--invoice yes"):
        change_payment_method(order, "invoice", "alice@shop.example")
    order.customer.invoice_enabled = True
    change_payment_method(order, "invoice", "alice@shop.example")
    assert order.payment_method == "invoice"


def test_an_order_opened_by_mail_gets_its_card_when_first_needed(context: Context, session: Session) -> None:
    customer = upsert_person(session, CUSTOMER)
    request, _ = open_request(session, Mailbox("orders@shop.example", "orders"), "Devis site", customer, "<m@x>")
    helpdesk, _ = open_request(session, Mailbox("support@shop.example"), "Question", customer, "<n@x>")
    order = ensure_order(session, request, context.settings)
    assert ensure_order(session, request) is order
    assert order.on_quote and order.source == "mail" and order.currency == "EUR" and not order.items
    detail = order_detail(session, request)
    assert detail is not None and detail["order"]["total"] == "0.00" and detail["quotes"] == []
    assert order_detail(session, helpdesk) is None
    with pytest.raises(NotAnOrder):
        ensure_order(session, helpdesk)


def test_confirming_a_card_order_charges_it(context: Context, session: Session, mailer: Mailer) -> None:
    order = new_order(context, session)
    confirmation = confirm_order(context.settings, mailer, order, "alice@shop.example")
    assert confirmation.outcome == "confirmed" and order.request.status == "confirmed"
    assert order.payment_status == "paid" and order.amount_paid == Decimal("450.00")
    [payment] = order.payments
    assert (payment.provider, payment.status, payment.method) == ("fake-card", "succeeded", "card")
    assert mails(session, "order_confirmed.customer")[0].recipient == CUSTOMER


def test_a_declined_card_leaves_the_order_unconfirmed_with_a_payment_row(context: Context, session: Session,
        mailer: Mailer) -> None:
    order = new_order(context, session, items=[{"description": "Audit", "quantity": 1, "unit_price": "450.13"}])
    confirmation = confirm_order(context.settings, mailer, order, "alice@shop.example")
    assert confirmation.outcome == "payment-declined"
    assert order.request.status == "pending" and order.payment_status == "unpaid"
    assert [(p.status, p.amount, p.attempts) for p in session.scalars(select(Payment))] == [
        ("declined", Decimal("450.13"), 1)]
    assert [m.recipient for m in mails(session, "payment_failed.coordinator")] == ["alice@shop.example"]
    assert not mails(session, "order_confirmed.customer")
    change_payment_method(order, "transfer", "alice@shop.example")
    assert confirm_order(context.settings, mailer, order, "alice@shop.example").outcome == "confirmed"


def test_completing_is_refused_while_unpaid_unless_forced(context: Context, session: Session, mailer: Mailer) -> None:
    order = new_order(context, session, payment_method="transfer")
    confirm_order(context.settings, mailer, order, "alice@shop.example")
    assert order.payments == [], "a transfer is not charged"
    ship_order(context.settings, mailer, order, "alice@shop.example", "COLIS123")
    assert "COLIS123" in mails(session, "order_shipped.customer")[0].raw.decode()
    with pytest.raises(OrderError, match="not paid"):
        complete_order(session, mailer, order, "alice@shop.example")
    record_paid(mailer, order, Decimal("400"), "VIR-1", "alice@shop.example")
    assert order.payment_status == "partial"
    record_paid(mailer, order, Decimal("50"), "VIR-2", "alice@shop.example")
    assert order.payment_status == "paid"
    complete_order(session, mailer, order, "alice@shop.example")
    assert order.request.status == "completed"
    mailer.write_outbox()
    assert [m.recipient for m in mails(session, "order_completed.customer")] == [CUSTOMER], "the customer is told"
    receipts = [email.message_from_bytes(m.raw, policy=email.policy.default).get_body(("plain",)).get_content()
                for m in mails(session, "payment_received.customer")]
    assert len(receipts) == 2, "a receipt for each payment recorded"
    assert "paiement de 400,00\xa0€ pour la commande" in receipts[0] and "(référence VIR-1)" in receipts[0]
    assert "Reste à payer : 50,00\xa0€." in receipts[0] and "entièrement payée" in receipts[1]


def test_an_unpaid_order_can_be_completed_by_force(context: Context, session: Session, mailer: Mailer) -> None:
    order = new_order(context, session, payment_method="cash")
    confirm_order(context.settings, mailer, order, "alice@shop.example")
    complete_order(session, mailer, order, "alice@shop.example", force=True)
    assert order.request.status == "completed" and order.payment_status == "unpaid"


def test_only_confirmed_orders_ship_and_only_open_orders_are_declined(context: Context, session: Session,
        mailer: Mailer) -> None:
    order = new_order(context, session)
    with pytest.raises(OrderError, match="only a confirmed order"):
        ship_order(context.settings, mailer, order, "alice@shop.example")
    decline_order(mailer, order, "alice@shop.example", "Rupture de stock")
    assert order.request.status == "declined"
    assert "Rupture de stock" in mails(session, "order_declined.customer")[0].raw.decode()
    with pytest.raises(OrderError):
        confirm_order(context.settings, mailer, order, "alice@shop.example")


def test_statistics_leave_out_on_quote_orders_confirmed_without_a_quote(context: Context, session: Session,
        mailer: Mailer) -> None:
    regular = new_order(context, session, payment_method="transfer")
    confirm_order(context.settings, mailer, regular, "alice@shop.example")
    unquoted = new_order(context, session, items=[], on_quote=True, payment_method="transfer")
    confirm_order(context.settings, mailer, unquoted, "alice@shop.example")
    quoted = new_order(context, session, items=[], on_quote=True)
    create_quote(session, context.settings, mailer, quoted, author="alice@shop.example", amount=Decimal("90"))
    stats = order_stats(session)
    assert stats["orders"] == 2 and stats["on_quote_confirmed_without_quote"] == 1
    assert stats["by_status"] == {"confirmed": 1, "in-progress": 1}
    assert stats["revenue_confirmed"] == {"EUR": "450.00"}
    assert stats["quotes_sent"] == 1 and stats["quote_acceptance_rate"] is None
    assert order_stats(session, since=regular.created_at + timedelta(days=1))["orders"] == 0


def test_a_homes_own_delivery_note_wins_over_the_built_in_one(context: Context, session: Session) -> None:
    order = new_order(context, session, shipping_address="jean dupont\n12 rue des Lilas\n75011 Paris")
    built_in = pdf_text(delivery_note(context.settings, order, "fr").payload)
    assert "Bon de livraison" in built_in and "Destinataire\njean dupont\n12 rue des Lilas\n75011 Paris" in built_in, \
        "the name once, when the address begins with it"
    site = context.settings.home / "site"
    override = site / "templates" / "pdf" / "delivery_note.html.j2"
    override.parent.mkdir(parents=True)
    override.write_text("<h1>Bordereau {{ number }}</h1><p>{{ ship_to | join(' - ') }}</p>", encoding="utf-8")
    ours = pdf_text(delivery_note(context.settings.with_overrides(home=site), order, "fr").payload)
    assert f"Bordereau {order.number}" in ours and "jean dupont - 12 rue des Lilas - 75011 Paris" in ours
    assert "Bon de livraison" not in ours


def pdf_text(payload: bytes) -> str:
    return "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(payload)).pages)


def test_an_order_ships_without_its_note_when_the_note_cannot_be_written(context: Context, session: Session,
        mailer: Mailer) -> None:
    """A home's delivery note that does not render (here, a variable it never gets) must not keep the
    parcel from being announced: the customer is told, without the PDF, and the request says why."""
    longest = "x" * 1000
    order = new_order(context, session, payment_method="transfer",
                      items=[{"description": longest, "quantity": 1, "unit_price": "10.00"}])
    assert b"%PDF" in delivery_note(context.settings, order, "fr").payload, "the longest description fits a page"
    site = context.settings.home / "site"
    (site / "templates" / "pdf").mkdir(parents=True)
    (site / "templates" / "pdf" / "delivery_note.html.j2").write_text("<p>{{ warehouse }}</p>", encoding="utf-8")
    settings = context.settings.with_overrides(home=site)
    confirm_order(settings, mailer, order, "alice@shop.example")
    ship_order(settings, mailer, order, "alice@shop.example", "COLIS9")
    mailer.write_outbox()
    assert order.request.status == "shipped"
    shipped = email.message_from_bytes(mails(session, "order_shipped.customer")[0].raw, policy=email.policy.default)
    assert "COLIS9" in shipped.get_body(("plain",)).get_content() and list(shipped.iter_attachments()) == []
    assert any(e.kind == "delivery-note" and "warehouse" in e.detail for e in order.request.events)
    too_long = validate_order(session, context.settings, {**ORDER, "items": [
        {"description": longest + "x", "offer": longest + "x", "quantity": 1, "unit_price": "10.00"}]})
    assert {e.field for e in too_long} == {"items[0].description", "items[0].offer"}  # type: ignore[union-attr]
