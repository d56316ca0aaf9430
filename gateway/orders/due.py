"""What the sweep does when an order's deadline comes (CONTRACT §10), one handler per kind.

A handler runs in the transaction that marks its deadline done (``gateway.deadlines.run_due``)
and says what it did. A deadline whose order moved on without voiding it does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from gateway.deadlines import Handler
from gateway.helpdesk import record_event
from gateway.models import Deadline, Request
from gateway.notify import Mailer
from gateway.orders import subscriptions, timeline
from gateway.orders.lifecycle import OPEN, WORKING, cancel_order, complete_unreviewed
from gateway.orders.mail import tell_coordinators, tell_customer
from gateway.orders.models import Order
from gateway.orders.money import format_amount
from gateway.orders.quotes import DecidedMeanwhile
from gateway.settings import Settings

SWEEP = "the gateway"  # the author of what a deadline does, in events and mails


# What a handler reads and changes of an order, loaded with it: lazy loads, one query each, were
# most of a sweep's time (bench/sweep.py).
_WITH_WHAT_HANDLERS_READ = (joinedload(Order.request).selectinload(Request.participants),
                            joinedload(Order.request).selectinload(Request.labels),
                            joinedload(Order.request).selectinload(Request.events),
                            joinedload(Order.request).selectinload(Request.comments),
                            joinedload(Order.customer), selectinload(Order.payments), selectinload(Order.quotes),
                            selectinload(Order.items), selectinload(Order.subscription))


def read_ahead(mailer: Mailer, deadlines: list[Deadline]) -> list[Order]:
    """The orders of a batch of deadlines with what their handlers read, in one query per collection
    for the whole batch (``_order`` then finds each in the session), and the mails sent lately about
    them, which the mail limit counts."""
    ids = {deadline.request_id for deadline in deadlines}
    orders = list(mailer.session.scalars(select(Order).where(Order.request_id.in_(ids))
                                         .options(*_WITH_WHAT_HANDLERS_READ)).unique())
    mailer.read_ahead(*(order.request for order in orders))
    return orders


def _order(session: Session, deadline: Deadline) -> Order:
    return session.get_one(Order, deadline.request_id)  # read ahead with the batch (``read_ahead``)


def _not_accepted(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = _order(session, deadline)
    if order.request.status not in OPEN:
        return f"nothing to do: the order is {order.request.status}"
    reason = f"not accepted within {timeline.times_of(settings, order).acceptance_hours:g} hours"
    return _cancelled(settings, mailer, order, reason)


def _cancelled(settings: Settings, mailer: Mailer, order: Order, reason: str) -> str:
    """The order cancelled, unless its customer answered its quote as the deadline fell: their answer
    stands, and the coordinators see it on the order."""
    try:
        done = cancel_order(settings, mailer, order, SWEEP, reason)
    except DecidedMeanwhile as decided:
        record_event(order.request, "deadline", f"not cancelled ({reason}): {decided}")
        return f"not cancelled: {decided}"
    refunded = sum(-refund.amount for refund in done.refunded)
    return f"cancelled ({reason})" + (f", {format_amount(refunded)} {order.currency} refunded" if refunded else "")


def _delivery_soon(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = _order(session, deadline)
    if order.request.status not in WORKING or order.due_at is None:
        return f"nothing to do: the order is {order.request.status}"
    record_event(order.request, "due", f"delivery due {order.due_at.isoformat(timespec='minutes')} UTC: "
                 "coordinators reminded")
    tell_coordinators(mailer, order, "delivery_due", {"due_at": order.due_at})
    return "coordinators reminded"


def _late(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = _order(session, deadline)
    if order.request.status not in WORKING:
        return f"nothing to do: the order is {order.request.status}"
    order.late = True
    record_event(order.request, "late", f"not delivered by {deadline.due_at.isoformat(timespec='minutes')} UTC")
    tell_coordinators(mailer, order, "order_late", {"due_at": order.due_at})
    tell_customer(mailer, order, "order_late", {"due_at": order.due_at})
    return "late"


def _not_reviewed(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = _order(session, deadline)
    if order.request.status != "delivered":
        return f"nothing to do: the order is {order.request.status}"
    complete_unreviewed(mailer, order, timeline.times_of(settings, order).review_days)
    return "completed without a review"


def _revision_unanswered(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = _order(session, deadline)
    if order.revision_status != "requested":
        return "nothing to do: the revision was answered"
    hours = timeline.times_of(settings, order).revision_answer_hours
    record_event(order.request, "revision", f"not answered within {hours:g} hours: coordinators told")
    tell_coordinators(mailer, order, "revision_overdue", {"reason": order.revision_reason or ""})
    return "coordinators told the revision waits for an answer"


def _not_paid_reminder(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = _order(session, deadline)
    if order.payment_status == "paid" or order.request.status not in WORKING:
        return f"nothing to do: the order is {order.request.status}, {order.payment_status}"
    record_event(order.request, "payment-reminder", f"{format_amount(order.amount_due)} {order.currency} "
                 "reminded by the gateway (prepayment)")
    tell_customer(mailer, order, "prepayment_reminder", {"bank_details": settings.bank_details,
                                                         "reference": f"#{order.number}"})
    return "customer reminded"


def _not_paid(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = _order(session, deadline)
    if order.payment_status == "paid" or order.request.status not in WORKING:
        return f"nothing to do: the order is {order.request.status}, {order.payment_status}"
    days = timeline.times_of(settings, order).prepayment_cancel_days
    return _cancelled(settings, mailer, order, f"not paid within {days:g} days")


def _subscription(step: Callable[[Session, Settings, Mailer, Order], str]) -> Handler:
    def handler(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
        return step(session, settings, mailer, _order(session, deadline))
    return handler


def _renewal(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    return subscriptions.due_renewal(session, settings, mailer, _order(session, deadline), deadline.due_at)


HANDLERS: dict[str, Handler] = {
    subscriptions.START: _subscription(subscriptions.due_start),
    subscriptions.RENEWAL: _renewal,
    subscriptions.RETRY: _subscription(subscriptions.due_retry),
    subscriptions.END: _subscription(subscriptions.due_end),
    timeline.ACCEPTANCE: _not_accepted,
    timeline.DELIVERY_REMINDER: _delivery_soon,
    timeline.DELIVERY: _late,
    timeline.REVIEW: _not_reviewed,
    timeline.REVISION_ANSWER: _revision_unanswered,
    timeline.PREPAYMENT_REMINDER: _not_paid_reminder,
    timeline.PREPAYMENT_CANCEL: _not_paid,
}
