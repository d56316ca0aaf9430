"""Deadlines fire once and only once (CONTRACT §10): on time, after a day of downtime, across a crash in
the middle of a sweep, with the clock moved backwards, with sweepers racing on PostgreSQL.

The clock is moved with time-machine; the acceptance window (an order not confirmed within 48 hours
is cancelled and refunded) is the deadline these tests watch.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import time_machine
from sqlalchemy import func, select

from gateway.context import Context, open_context
from gateway.deadlines import run_due, schedule
from gateway.helpdesk import upsert_person
from gateway.models import Deadline, Event, Outbox
from gateway.orders.due import HANDLERS
from gateway.orders.lifecycle import confirm_order
from gateway.orders.models import Order
from gateway.orders.placing import OrderDraft, create_order, validate_order
from gateway.orders.stats import order_stats
from gateway.payments.ledger import charge_order
from gateway.settings import Mailbox, OrderTimes, Settings
from gateway.transaction import mailing

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
ORDER = {"customer": {"email": "jean@client.example", "name": "Jean"}, "subject": "Logo",
         "items": [{"description": "Logo", "quantity": 1, "unit_price": "120.00"}], "currency": "EUR",
         "payment_method": "card"}


def _settings(tmp_path: Path, database_url: str = "") -> Settings:
    return Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="s" * 40, database_url=database_url,
                    payment_provider="fake-card",
                    mailboxes=(Mailbox("support@shop.example"),
                               Mailbox("orders@shop.example", "orders", times=OrderTimes(acceptance_hours=48))))


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


@pytest.fixture
def context(tmp_path: Path, clock: time_machine.Coordinates) -> Iterator[Context]:
    context = open_context(_settings(tmp_path))
    yield context
    context.engine.dispose()


def _paid_orders(context: Context, count: int = 1) -> list[int]:
    """Orders placed now and paid by card up front (the marketplace way), not confirmed."""
    numbers = []
    with mailing(context) as (session, mailer):
        upsert_person(session, "alice@shop.example", role="coordinator")
        for _ in range(count):
            draft = validate_order(session, context.settings, ORDER)
            assert isinstance(draft, OrderDraft)
            order = create_order(session, context.settings, mailer, draft)
            assert charge_order(context.settings, order, Decimal("120.00")).status == "succeeded"
            numbers.append(order.number)
    return numbers


def _order(context: Context, number: int) -> tuple[str, str, list[Decimal]]:
    with context.sessions() as session:
        order = session.get_one(Order, number)
        return order.request.status, order.payment_status, [p.amount for p in order.payments]


def _mails(context: Context, template: str) -> list[str]:
    with context.sessions() as session:
        return list(session.scalars(select(Outbox.recipient).where(Outbox.template == template).order_by(Outbox.id)))


def test_an_order_not_accepted_in_48_hours_is_cancelled_and_refunded_once(
        context: Context, clock: time_machine.Coordinates) -> None:
    [number] = _paid_orders(context)
    clock.move_to(START + timedelta(hours=47, minutes=59))
    assert run_due(context, HANDLERS).done == []
    assert _order(context, number)[0] == "pending"
    clock.move_to(START + timedelta(hours=48))
    swept = run_due(context, HANDLERS)
    assert swept.done == [f"deadline 1 (acceptance of #{number}): cancelled (not accepted within 48 hours), "
                          "120.00 EUR refunded"]
    assert _order(context, number) == ("cancelled", "refunded", [Decimal("120.00"), Decimal("-120.00")])
    assert _mails(context, "order_cancelled.customer") == ["jean@client.example"]
    assert _mails(context, "order_cancelled.coordinator") == ["alice@shop.example"]
    assert len(swept.outbox_ids) == 2
    clock.move_to(START + timedelta(days=30))
    assert run_due(context, HANDLERS).done == [], "done once"
    assert len(_mails(context, "order_cancelled.customer")) == 1
    with context.sessions() as session:
        stats = order_stats(session)
    assert (stats["cancelled"], stats["refunds"], stats["refunded"]) == (1, 1, {"EUR": "120.00"})


def test_an_order_confirmed_in_time_voids_its_acceptance_deadline(
        context: Context, clock: time_machine.Coordinates) -> None:
    [number] = _paid_orders(context)
    clock.move_to(START + timedelta(hours=30))
    with mailing(context) as (session, mailer):
        assert confirm_order(context.settings, mailer, session.get_one(Order, number),
                             "alice@shop.example").outcome == "confirmed"
    clock.move_to(START + timedelta(days=3))
    assert run_due(context, HANDLERS).done == []
    assert _order(context, number)[0] == "confirmed"
    with context.sessions() as session:
        deadline = session.scalars(select(Deadline)).one()
        assert (deadline.state, deadline.outcome) == ("void", "confirmed by alice@shop.example")


def test_a_deadline_replaced_in_the_transaction_that_scheduled_it_is_void(context: Context) -> None:
    """``void`` does not flush the session, but it sees a deadline added and not flushed yet."""
    [number] = _paid_orders(context)
    with context.sessions.begin() as session:
        request = session.get_one(Order, number).request
        schedule(session, request, "delivery", START + timedelta(days=5))
        schedule(session, request, "delivery", START + timedelta(days=6))
    with context.sessions() as session:
        rows = session.execute(select(Deadline.due_at, Deadline.state, Deadline.outcome)
                               .where(Deadline.kind == "delivery").order_by(Deadline.due_at)).all()
    assert [tuple(row) for row in rows] == [(datetime(2026, 12, 6, 9, 0), "void", "replaced"),
                                           (datetime(2026, 12, 7, 9, 0), "pending", "")]


def test_after_a_day_of_downtime_every_missed_deadline_is_done_in_the_order_due(
        context: Context, clock: time_machine.Coordinates) -> None:
    numbers = []
    for hour in (0, 5, 10):
        clock.move_to(START + timedelta(hours=hour))
        numbers += _paid_orders(context)
    clock.move_to(START + timedelta(days=4))
    swept = run_due(context, HANDLERS)
    assert [line.split("(acceptance of #")[1].split(")")[0] for line in swept.done] == [str(n) for n in numbers]
    assert all(_order(context, n)[0] == "cancelled" for n in numbers)


def test_a_crash_in_the_middle_of_a_sweep_leaves_the_deadline_to_the_next_sweep_and_does_it_once(
        context: Context, clock: time_machine.Coordinates, monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = _paid_orders(context, 3)
    clock.move_to(START + timedelta(days=3))
    calls = []

    def dies_on_the_second(*args: object) -> str:
        calls.append(1)
        outcome = HANDLERS["acceptance"](*args)  # type: ignore[arg-type]
        if len(calls) == 2:
            raise KeyboardInterrupt("the process is killed after acting, before the commit")
        return outcome

    with pytest.raises(KeyboardInterrupt):
        run_due(context, {"acceptance": dies_on_the_second})
    assert [_order(context, n)[0] for n in numbers] == ["pending"] * 3, "the whole batch rolled back"
    assert _mails(context, "order_cancelled.customer") == []
    swept = run_due(context, HANDLERS)
    assert len(swept.done) == 3
    assert [_order(context, n)[1] for n in numbers] == ["refunded"] * 3
    assert [len(_order(context, n)[2]) for n in numbers] == [2, 2, 2], "one refund each"
    assert len(_mails(context, "order_cancelled.customer")) == 3


_KILLED_MID_SWEEP = """
import os, signal, sys
from datetime import datetime
from pathlib import Path
import time_machine
from gateway.context import open_context
from gateway.deadlines import run_due
from gateway.orders.due import HANDLERS
from gateway.settings import Mailbox, OrderTimes, Settings

home = Path(sys.argv[1])
settings = Settings(home=home, data_dir=home / "var", secret_key="s" * 40, payment_provider="fake-card",
                    mailboxes=(Mailbox("support@shop.example"),
                               Mailbox("orders@shop.example", "orders", times=OrderTimes(acceptance_hours=48))))
done = []

def killed_on_the_second(*args):
    outcome = HANDLERS["acceptance"](*args)
    done.append(outcome)
    if len(done) == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # after acting, before the commit
    return outcome

with time_machine.travel(datetime.fromisoformat(sys.argv[2]), tick=False):
    run_due(open_context(settings), {"acceptance": killed_on_the_second})
"""


def test_a_sweeping_process_killed_mid_sweep_leaves_everything_to_the_next_sweep(
        context: Context, clock: time_machine.Coordinates, tmp_path: Path) -> None:
    numbers = _paid_orders(context, 3)
    clock.move_to(START + timedelta(days=3))
    killed = subprocess.run([sys.executable, "-c", _KILLED_MID_SWEEP, str(tmp_path),
                             (START + timedelta(days=3)).isoformat()], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [_order(context, n)[0] for n in numbers] == ["pending"] * 3, "nothing of the batch was kept"
    assert _mails(context, "order_cancelled.customer") == []
    assert len(run_due(context, HANDLERS).done) == 3
    assert [len(_order(context, n)[2]) for n in numbers] == [2, 2, 2], "one refund each"
    assert run_due(context, HANDLERS).done == []


def test_a_clock_moved_backwards_does_nothing_twice(context: Context, clock: time_machine.Coordinates) -> None:
    [number] = _paid_orders(context)
    clock.move_to(START + timedelta(days=3))
    assert len(run_due(context, HANDLERS).done) == 1
    clock.move_to(START + timedelta(hours=1))
    assert run_due(context, HANDLERS).done == []
    clock.move_to(START + timedelta(days=5))
    assert run_due(context, HANDLERS).done == []
    assert len(_order(context, number)[2]) == 2


def test_a_deadline_whose_handler_fails_stays_pending_and_the_others_are_done(
        context: Context, clock: time_machine.Coordinates) -> None:
    first, second = _paid_orders(context, 2)

    def fails_for_the_first(session, settings, mailer, deadline):  # type: ignore[no-untyped-def]
        if deadline.request_id == first:
            raise RuntimeError("a bug")
        return HANDLERS["acceptance"](session, settings, mailer, deadline)

    clock.move_to(START + timedelta(days=3))
    swept = run_due(context, {"acceptance": fails_for_the_first})
    assert len(swept.done) == 1 and len(swept.failed) == 1
    assert (_order(context, first)[0], _order(context, second)[0]) == ("pending", "cancelled")
    assert len(run_due(context, HANDLERS).done) == 1, "the next sweep tries it again"


@pytest.mark.postgres
def test_sweepers_racing_on_postgresql_do_each_deadline_once(tmp_path: Path, postgres_url: str,
                                                              clock: time_machine.Coordinates,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.deadlines.BATCH", 3)  # small batches, so the sweepers meet
    context = open_context(_settings(tmp_path, postgres_url))
    try:
        numbers = _paid_orders(context, 40)
        clock.move_to(START + timedelta(days=3))
        results: list[list[str]] = []
        start = threading.Barrier(4)

        def sweeper() -> None:
            start.wait()
            results.append(run_due(context, HANDLERS).done)

        threads = [threading.Thread(target=sweeper) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(len(done) for done in results) != [0, 0, 0, 40], "the sweepers took turns, not raced"
        assert sum(len(done) for done in results) == 40
        with context.sessions() as session:
            assert session.scalar(select(func.count(Event.id)).where(Event.kind == "cancelled")) == 40
        assert all(len(_order(context, n)[2]) == 2 for n in numbers), "one refund each"
        assert len(_mails(context, "order_cancelled.customer")) == 40
    finally:
        context.engine.dispose()
