"""Subscriptions billed by the sweep: periods, the dunning schedule, and the end of the retries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine

from gateway.context import Context, open_context
from gateway.deadlines import run_due
from gateway.helpdesk import upsert_person
from gateway.orders.due import HANDLERS, read_ahead
from gateway.orders.lifecycle import confirm_order
from gateway.orders.models import Order, Subscription
from gateway.orders.placing import OrderDraft, create_order, validate_order
from gateway.orders.subscriptions import period_end
from gateway.settings import Mailbox, Plan, Settings
from gateway.transaction import mailing

START = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("start, interval, end", [
    (datetime(2027, 1, 31), "month", datetime(2027, 2, 28)), (datetime(2028, 1, 31), "month", datetime(2028, 2, 29)),
    (datetime(2027, 12, 15), "month", datetime(2028, 1, 15)), (datetime(2027, 3, 1), "week", datetime(2027, 3, 8)),
    (datetime(2028, 2, 29), "year", datetime(2029, 2, 28))])
def test_a_period_ends_on_the_same_day_or_the_last_of_a_shorter_month(start: datetime, interval: str,
                                                                      end: datetime) -> None:
    assert period_end(start, interval) == end


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    with time_machine.travel(START, tick=False):
        context = open_context(Settings(
            home=tmp_path, data_dir=tmp_path / "var", secret_key="s" * 40, payment_provider="fake-card",
            plans=(Plan("pro", Decimal("29.00"), "EUR", "month"),), retry_days=(1, 3),
            mailboxes=(Mailbox("orders@shop.example", "orders"),)))
        yield context
        context.engine.dispose()


def test_declined_renewals_are_retried_on_the_schedule_then_the_subscription_is_inactive(context: Context) -> None:
    with time_machine.travel(START, tick=False) as clock:
        with mailing(context) as (session, mailer):
            upsert_person(session, "alice@shop.example", role="coordinator")
            customer = upsert_person(session, "jean@client.example")
            customer.card_reference = "tok_visa"
            draft = validate_order(session, context.settings, {
                "customer": {"email": "jean@client.example"}, "subject": "Pro", "payment_method": "card",
                "plan": "pro", "items": [{"description": "Pro", "quantity": 1, "unit_price": "29.00"}]})
            assert isinstance(draft, OrderDraft)
            order = create_order(session, context.settings, mailer, draft)
            assert confirm_order(context.settings, mailer, order,
                                 "alice@shop.example").outcome == "confirmed"
            customer.card_reference = "tok_chargeDeclined"
            number = order.number

        with context.sessions() as session:
            assert (session.get_one(Order, number).amount_paid, session.get_one(Order, number).payment_status) == (
                Decimal("29.00"), "paid"), "the order's payment status follows its subscription's charges"

        def state() -> tuple[str, str | None, list[str]]:
            with context.sessions() as session:
                sub = session.query(Subscription).one()
                return sub.status, sub.reason, [p.status for p in session.get_one(Order, number).payments]

        assert state() == ("active", None, ["succeeded"])
        clock.move_to(datetime(2027, 2, 28, 10, 0, tzinfo=UTC))
        run_due(context, HANDLERS, read_ahead=read_ahead)
        assert state() == ("payment-failed", None, ["succeeded", "declined"])
        clock.move_to(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
        assert run_due(context, HANDLERS, read_ahead=read_ahead).done == [], "the retry is a day after"
        clock.move_to(datetime(2027, 3, 1, 10, 0, tzinfo=UTC))
        run_due(context, HANDLERS, read_ahead=read_ahead)
        assert state() == ("payment-failed", None, ["succeeded", "declined", "declined"])
        clock.move_to(datetime(2027, 3, 3, 10, 0, tzinfo=UTC))
        run_due(context, HANDLERS, read_ahead=read_ahead)
        assert state() == ("inactive", "payment-failed", ["succeeded", "declined", "declined", "declined"])
        clock.move_to(START + timedelta(days=400))
        assert run_due(context, HANDLERS, read_ahead=read_ahead).done == [], "nothing more is charged"
