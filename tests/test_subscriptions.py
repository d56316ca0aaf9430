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
from gateway.orders.subscriptions import choose_plan, period_end, terminate
from gateway.settings import Mailbox, Plan, Settings, load
from gateway.transaction import mailing

START = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("start, interval, end", [
    (datetime(2027, 1, 31), "month", datetime(2027, 2, 28)), (datetime(2028, 1, 31), "month", datetime(2028, 2, 29)),
    (datetime(2027, 12, 15), "month", datetime(2028, 1, 15)), (datetime(2027, 3, 1), "week", datetime(2027, 3, 8)),
    (datetime(2028, 2, 29), "year", datetime(2029, 2, 28))])
def test_a_period_ends_on_the_same_day_or_the_last_of_a_shorter_month(start: datetime, interval: str,
                                                                      end: datetime) -> None:
    assert period_end(start, interval) == end


def _context(tmp_path: Path, retry_days: tuple[int, ...]) -> Context:
    return open_context(Settings(
        home=tmp_path, data_dir=tmp_path / "var", secret_key="s" * 40, payment_provider="fake-card",
        plans=(Plan("pro", Decimal("29.00"), "EUR", "month"),), retry_days=retry_days,
        mailboxes=(Mailbox("orders@shop.example", "orders"),)))


@pytest.fixture
def context(tmp_path: Path) -> Iterator[Context]:
    with time_machine.travel(START, tick=False):
        context = _context(tmp_path, (1, 3))
        yield context
        context.engine.dispose()


def _subscribed(context: Context, *, plan: str | None = "pro", starts: datetime | None = None) -> int:
    """An order of Jean's (card on file, ``tok_visa``) with a plan, confirmed by Alice; its number.
    ``plan`` None: chosen by ``#plan`` before the confirmation, from ``starts``."""
    with mailing(context) as (session, mailer):
        upsert_person(session, "alice@shop.example", role="coordinator")
        customer = upsert_person(session, "jean@client.example")
        customer.card_reference = "tok_visa"
        draft = validate_order(session, context.settings, {
            "customer": {"email": "jean@client.example"}, "subject": "Pro", "payment_method": "card",
            **({"plan": plan} if plan else {}),
            "items": [{"description": "Pro", "quantity": 1, "unit_price": "29.00"}]})
        assert isinstance(draft, OrderDraft)
        order = create_order(session, context.settings, mailer, draft)
        if plan is None:
            choose_plan(session, context.settings, mailer, order, "pro", starts, "alice@shop.example")
        assert confirm_order(context.settings, mailer, order, "alice@shop.example").outcome == "confirmed"
        return order.number


def _state(context: Context, number: int) -> tuple[str, str | None, list[str]]:
    with context.sessions() as session:
        sub = session.query(Subscription).one()
        return sub.status, sub.reason, [p.status for p in session.get_one(Order, number).payments]


def _decline_from_now(context: Context) -> None:
    with mailing(context) as (session, _mailer):
        upsert_person(session, "jean@client.example").card_reference = "tok_chargeDeclined"


def _sweep(context: Context) -> list[str]:
    return run_due(context, HANDLERS, read_ahead=read_ahead).done


def test_declined_renewals_are_retried_on_the_schedule_then_the_subscription_is_inactive(context: Context) -> None:
    with time_machine.travel(START, tick=False) as clock:
        number = _subscribed(context)
        _decline_from_now(context)
        with context.sessions() as session:
            assert (session.get_one(Order, number).amount_paid, session.get_one(Order, number).payment_status) == (
                Decimal("29.00"), "paid"), "the order's payment status follows its subscription's charges"

        def state() -> tuple[str, str | None, list[str]]:
            return _state(context, number)

        assert state() == ("active", None, ["succeeded"])
        clock.move_to(datetime(2027, 2, 28, 10, 0, tzinfo=UTC))
        _sweep(context)
        assert state() == ("payment-failed", None, ["succeeded", "declined"])
        clock.move_to(datetime(2027, 3, 1, 9, 0, tzinfo=UTC))
        assert _sweep(context) == [], "the retry is a day after"
        clock.move_to(datetime(2027, 3, 1, 10, 0, tzinfo=UTC))
        _sweep(context)
        assert state() == ("payment-failed", None, ["succeeded", "declined", "declined"])
        clock.move_to(datetime(2027, 3, 3, 10, 0, tzinfo=UTC))
        _sweep(context)
        assert state() == ("inactive", "payment-failed", ["succeeded", "declined", "declined", "declined"])
        clock.move_to(START + timedelta(days=400))
        assert _sweep(context) == [], "nothing more is charged"


def test_without_a_schedule_in_the_config_a_decline_is_retried_after_1_3_5_and_7_days(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[gateway]\ndomain = "shop.example"\nsecret_key = "' + "s" * 40 + '"\n')
    assert load(str(config)).retry_days == (1, 3, 5, 7)
    with time_machine.travel(START, tick=False) as clock:
        context = _context(tmp_path, load(str(config)).retry_days)
        number = _subscribed(context)
        _decline_from_now(context)
        renewal = datetime(2027, 2, 28, 10, 0, tzinfo=UTC)
        clock.move_to(renewal)
        _sweep(context)
        for days in (1, 3, 5, 7):
            clock.move_to(renewal + timedelta(days=days) - timedelta(minutes=1))
            assert _sweep(context) == [], f"not before day {days}"
            clock.move_to(renewal + timedelta(days=days))
            assert len(_sweep(context)) == 1
        status, reason, payments = _state(context, number)
        assert (status, reason, payments.count("declined")) == ("inactive", "payment-failed", 5)
        context.engine.dispose()


def test_a_plan_chosen_by_command_from_a_later_date_is_scheduled_then_starts_and_charges(context: Context) -> None:
    starts = datetime(2027, 2, 10, 10, 0)  # as #plan pro from 2027-02-10T10:00 reads it: UTC, no zone
    with time_machine.travel(START, tick=False) as clock:
        number = _subscribed(context, plan=None, starts=starts)
        assert _state(context, number) == ("scheduled", None, []), "nothing charged before it starts"
        clock.move_to(starts.replace(tzinfo=UTC) - timedelta(minutes=1))
        assert _sweep(context) == []
        clock.move_to(starts.replace(tzinfo=UTC))
        _sweep(context)
        assert _state(context, number) == ("active", None, ["succeeded"])
        with context.sessions() as session:
            sub = session.query(Subscription).one()
            assert (sub.current_period_start, sub.current_period_end) == (
                starts, datetime(2027, 3, 10, 10, 0)), "its first period starts on the date"


def test_terminate_now_ends_it_at_once_and_nothing_more_is_charged(context: Context) -> None:
    with time_machine.travel(START, tick=False) as clock:
        number = _subscribed(context)
        with mailing(context) as (session, mailer):
            terminate(session, mailer, session.get_one(Order, number), True, "alice@shop.example")
        assert _state(context, number) == ("inactive", "terminated", ["succeeded"])
        clock.move_to(START + timedelta(days=400))
        assert _sweep(context) == [], "its renewal was voided"
        assert _state(context, number) == ("inactive", "terminated", ["succeeded"])
