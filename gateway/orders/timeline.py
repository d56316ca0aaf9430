"""When an order's deadlines start and end (CONTRACT §10): the changes of its life write them.

Each function runs in the transaction of the change it follows (``gateway.deadlines``); what the
sweep does once one is due is in ``gateway.orders.due``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.deadlines import schedule, void
from gateway.orders.models import Order
from gateway.settings import OrderTimes, Settings

ACCEPTANCE = "acceptance"  # not confirmed in time: cancelled, refunded
DELIVERY_REMINDER = "delivery-reminder"  # the coordinators are reminded before the delivery deadline
DELIVERY = "delivery"  # not delivered by then: late
REVIEW = "review"  # delivered, and the customer neither completed nor asked a revision: completed
REVISION_ANSWER = "revision-answer"  # a revision request not answered: the coordinators are told
PREPAYMENT_REMINDER = "prepayment-reminder"  # a transfer not received: the customer is reminded
PREPAYMENT_CANCEL = "prepayment-cancel"  # still not received: cancelled
DEADLINE_KINDS = (ACCEPTANCE, DELIVERY_REMINDER, DELIVERY, REVIEW, REVISION_ANSWER, PREPAYMENT_REMINDER,
                  PREPAYMENT_CANCEL)
_PREPAYMENT = (PREPAYMENT_REMINDER, PREPAYMENT_CANCEL)


def times_of(settings: Settings, order: Order) -> OrderTimes:
    """The deadlines of the order's mailbox (none when the mailbox is gone from the configuration)."""
    mailbox = settings.mailbox_for(order.request.mailbox)
    return mailbox.times if mailbox is not None else OrderTimes()


def is_prepayment(settings: Settings, order: Order) -> bool:
    """Paid by transfer in a mailbox that waits for the money before it ships (``prepayment_*_days``)."""
    times = times_of(settings, order)
    return order.payment_method == "transfer" and bool(times.prepayment_reminder_days or times.prepayment_cancel_days)


def placed(session: Session, settings: Settings, order: Order) -> None:
    """A new order: its seller has ``acceptance_hours`` to confirm it."""
    hours = times_of(settings, order).acceptance_hours
    if hours:
        schedule(session, order.request, ACCEPTANCE, order.created_at + timedelta(hours=hours))


def declined(session: Session, order: Order, how: str) -> None:
    void(session, order.request, [ACCEPTANCE], how)


def confirmed(session: Session, settings: Settings, order: Order, how: str) -> None:
    """Confirmed: the acceptance window is over; the delivery deadline (the mailbox's default unless
    ``#due`` set one) and, for an order paid by transfer and not paid yet, the prepayment ones start."""
    void(session, order.request, [ACCEPTANCE], how)
    times, now = times_of(settings, order), utcnow()
    if order.due_at is None and times.delivery_days:
        set_due(session, settings, order, now + timedelta(days=times.delivery_days))
    if is_prepayment(settings, order) and order.payment_status != "paid":
        if times.prepayment_reminder_days:
            schedule(session, order.request, PREPAYMENT_REMINDER, now + timedelta(days=times.prepayment_reminder_days))
        if times.prepayment_cancel_days:
            schedule(session, order.request, PREPAYMENT_CANCEL, now + timedelta(days=times.prepayment_cancel_days))


def set_due(session: Session, settings: Settings, order: Order, due_at: datetime) -> None:
    """The delivery deadline, and the reminder ``delivery_reminder_hours`` before it (if still ahead)."""
    order.due_at, order.late = due_at, False
    schedule(session, order.request, DELIVERY, due_at)
    reminder = due_at - timedelta(hours=times_of(settings, order).delivery_reminder_hours)
    if reminder > utcnow():
        schedule(session, order.request, DELIVERY_REMINDER, reminder)
    else:
        void(session, order.request, [DELIVERY_REMINDER], "the deadline moved closer than the reminder")


def paid(session: Session, order: Order) -> None:
    """Paid in full: no prepayment reminder, no cancellation for want of it."""
    void(session, order.request, _PREPAYMENT, "paid")


def shipped(session: Session, order: Order) -> None:
    """Goods that left cannot be cancelled for want of payment: a transfer still awaited is only reminded."""
    void(session, order.request, [PREPAYMENT_CANCEL], "shipped")


def delivered(session: Session, settings: Settings, order: Order) -> None:
    """Delivered: the delivery deadlines end, the review window opens."""
    void(session, order.request, [DELIVERY, DELIVERY_REMINDER, REVISION_ANSWER], "delivered")
    days = times_of(settings, order).review_days
    if days:
        schedule(session, order.request, REVIEW, utcnow() + timedelta(days=days))


def revision_asked(session: Session, settings: Settings, order: Order) -> None:
    void(session, order.request, [REVIEW], "revision asked")
    hours = times_of(settings, order).revision_answer_hours
    if hours:
        schedule(session, order.request, REVISION_ANSWER, utcnow() + timedelta(hours=hours))


def revision_answered(session: Session, settings: Settings, order: Order, accepted: bool) -> None:
    """Accepted: the order goes back to work (``#deliver`` again). Refused: the review window restarts."""
    void(session, order.request, [REVISION_ANSWER], "answered")
    if not accepted:
        delivered(session, settings, order)


def ended(session: Session, order: Order, how: str) -> None:
    """Cancelled or completed: nothing more is due."""
    void(session, order.request, DEADLINE_KINDS, how)
