"""An order's way through the inbox and the shop: confirm, decline, pay, ship, complete.

Each step runs inside the caller's transaction, raises ``OrderError`` when it cannot
apply (the command then refuses the whole mail), and writes its mails to the outbox.
A declined card is not an error: the attempt is kept as a payment row, the
coordinators are told, and the order stays unconfirmed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.helpdesk import record_event
from gateway.notify import Mailer
from gateway.orders import timeline
from gateway.orders.card import OrderError, set_label, set_status
from gateway.orders.delivery_note import NoteUnwritable, delivery_note
from gateway.orders.mail import tell_coordinators, tell_customer
from gateway.orders.models import PAYMENT_METHODS, ZERO, Order, Payment
from gateway.orders.money import format_amount
from gateway.orders.quotes import AWAITING_RESPONSE, withdraw_open_quote
from gateway.orders.subscriptions import start_subscription, terminate
from gateway.outbound.compose import MailFile
from gateway.payments import provider_for
from gateway.payments.ledger import charge_order, charge_request, record_payment, refund_payments
from gateway.settings import Settings

OPEN = ("pending", "in-progress")
CLOSED = ("declined", "completed", "cancelled")


@dataclass(frozen=True)
class Confirmation:
    """What ``#confirm`` did: ``confirmed``, or ``payment-declined`` with the failed attempt."""

    outcome: str
    payment: Payment | None = None


def payment_link(settings: Settings, order: Order) -> str | None:
    if order.amount_due <= ZERO:
        return None
    return provider_for(settings, order.payment_method).payment_link(charge_request(order))


def confirm_order(settings: Settings, mailer: Mailer, order: Order, author: str) -> Confirmation:
    """Confirm a pending or in-progress order; with card billing, charge the approved amount first."""
    if order.request.status not in OPEN:
        raise OrderError(f"order #{order.number} is {order.request.status}: only a pending or in-progress order "
                         "can be confirmed")
    if order.open_quote is not None:
        raise OrderError(f"quote v{order.open_quote.version} awaits the customer's answer: wait, or #withdraw it")
    payment = None
    provider = provider_for(settings, order.payment_method)
    if order.plan is None and order.payment_method == "card" and provider.charges_cards and order.amount_due > ZERO:
        payment = charge_order(settings, order, order.amount_due, provider)
        if not payment.status == "succeeded":
            record_event(order.request, "payment-declined",
                         f"{format_amount(payment.amount)} {payment.currency} by {provider.name}: {payment.comment}")
            tell_coordinators(mailer, order, "payment_failed", {"payment": payment, "reason": payment.comment,
                                                                "amount": format_amount(payment.amount)},
                              author=author)
            return Confirmation("payment-declined", payment)
        record_event(order.request, "payment", f"{format_amount(payment.amount)} {payment.currency} charged by "
                     f"{provider.name} ({payment.transaction_id})")
    set_status(order, "confirmed", author)
    order.decided_at = utcnow()
    timeline.confirmed(mailer.session, settings, order, f"confirmed by {author}")
    if order.plan is not None:  # billed by its subscription, period after period
        start_subscription(mailer.session, settings, mailer, order)
    set_label(order.request, AWAITING_RESPONSE, False)
    tell_customer(mailer, order, "order_confirmed", {"charged": payment is not None,
                                                     "payment_link": payment_link(settings, order),
                                                     "bank_details": settings.bank_details})
    return Confirmation("confirmed", payment)


def decline_order(mailer: Mailer, order: Order, author: str, reason: str) -> None:
    """Decline a pending or in-progress order; an open quote is withdrawn with it; the customer is told why."""
    if order.request.status not in OPEN:
        raise OrderError(f"order #{order.number} is {order.request.status}: only a pending or in-progress order "
                         "can be declined")
    withdraw_open_quote(mailer.session, order, "with the order", "see the order again")
    set_status(order, "declined", author)
    order.decided_at = utcnow()
    timeline.declined(mailer.session, order, f"declined by {author}")
    set_label(order.request, AWAITING_RESPONSE, False)
    order.request.expected_response = None
    tell_customer(mailer, order, "order_declined", {"reason": reason})


def change_payment_method(order: Order, method: str, author: str) -> None:
    """Card, transfer, cash, or invoice where it is enabled for that customer."""
    method = method.lower()
    if method not in PAYMENT_METHODS:
        raise OrderError(f"{method!r} is not a payment method: use {', '.join(PAYMENT_METHODS)}")
    if method == "invoice" and not order.customer.invoice_enabled:
        raise OrderError(f"invoice payment is not enabled for {order.customer.email}: "
                         f"`gateway people set {order.customer.email} --invoice yes` enables it")
    if order.payment_status == "paid":
        raise OrderError(f"order #{order.number} is paid already: its payment method cannot change")
    if order.payment_method != method:
        record_event(order.request, "payment-method", f"{order.payment_method} -> {method} by {author}")
        order.payment_method = method


def record_paid(mailer: Mailer, order: Order, amount: Decimal, reference: str, author: str) -> Payment:
    """Money received by cash, transfer or invoice: a payment row, the payment status follows, and the
    customer gets a receipt with what is left to pay."""
    if amount <= ZERO:
        raise OrderError("a payment needs an amount above zero")
    if order.request.status in ("declined", "cancelled"):
        raise OrderError(f"order #{order.number} is {order.request.status}: no payment can be recorded")
    payment = record_payment(order, amount, reference, author)
    record_event(order.request, "payment", f"{format_amount(amount)} {order.currency} recorded by {author}"
                 + (f" ({reference})" if reference else "") + f"; {order.payment_status}")
    if order.payment_status == "paid":
        timeline.paid(mailer.session, order)
    tell_customer(mailer, order, "payment_received", {"received": format_amount(amount), "reference": reference})
    return payment


def remind_payment(settings: Settings, mailer: Mailer, order: Order, author: str) -> None:
    """Re-send the payment link (or how to pay) to the customer, with a reminder."""
    if order.request.status in CLOSED:
        raise OrderError(f"order #{order.number} is {order.request.status}: no payment to remind")
    if order.amount_due <= ZERO:
        raise OrderError(f"order #{order.number} has nothing left to pay "
                         f"({format_amount(order.amount_paid)} of {format_amount(order.total)} {order.currency})")
    record_event(order.request, "payment-reminder", f"{format_amount(order.amount_due)} {order.currency} "
                 f"reminded by {author}")
    tell_customer(mailer, order, "payment_reminder", {"payment_link": payment_link(settings, order)})


def ship_order(settings: Settings, mailer: Mailer, order: Order, author: str, tracking: str = "",
               force: bool = False) -> None:
    """A confirmed order is shipped; the customer is told, with the tracking reference. A prepayment
    order ships once paid, unless ``force``: then it is reminded still, but no longer cancelled by itself."""
    if order.request.status != "confirmed":
        raise OrderError(f"order #{order.number} is {order.request.status}: only a confirmed order can be shipped")
    if timeline.is_prepayment(settings, order) and order.payment_status != "paid" and not force:
        raise OrderError(f"order #{order.number} is paid by transfer and not paid yet "
                         f"({format_amount(order.amount_paid)} of {format_amount(order.total)} {order.currency}): "
                         "record the payment with #paid AMOUNT, or write #ship force")
    order.tracking = tracking or order.tracking
    order.shipped_at = utcnow()
    timeline.shipped(mailer.session, order)
    set_status(order, "shipped", author)
    try:
        files = [delivery_note(settings, order, order.customer.locale or settings.locale)]
    except NoteUnwritable as error:  # the parcel is on its way all the same: the team sees why there is no note
        files = []
        record_event(order.request, "delivery-note", f"not written, the customer was told without it: {error}")
    tell_customer(mailer, order, "order_shipped", {"tracking": order.tracking or "", "delivery_note": bool(files),
                                                   "shipping_address": order.shipping_address}, files=files)


def complete_order(session: Session, mailer: Mailer, order: Order, author: str, force: bool = False) -> None:
    """A confirmed or shipped order is completed once paid (``force`` completes it unpaid); the customer
    is told."""
    if order.request.status not in ("confirmed", "shipped"):
        raise OrderError(f"order #{order.number} is {order.request.status}: only a confirmed or shipped order "
                         "can be completed")
    if order.payment_status != "paid" and not force:
        raise OrderError(f"order #{order.number} is not paid ({format_amount(order.amount_paid)} of "
                         f"{format_amount(order.total)} {order.currency}): record the payment with "
                         "#paid AMOUNT, or write #complete force")
    order.completed_at = utcnow()
    timeline.ended(session, order, "order completed")
    set_status(order, "completed", author + (" (forced, unpaid)" if order.payment_status != "paid" else ""))
    tell_customer(mailer, order, "order_completed", {"by_customer": False, "silent": False})


def _closed(session: Session, order: Order, how: str) -> None:
    """Cancelled or completed: nothing more is due, and nobody is waited for."""
    timeline.ended(session, order, how)
    set_label(order.request, AWAITING_RESPONSE, False)
    order.request.expected_response = None


CANCELLABLE = ("pending", "in-progress", "confirmed", "shipped", "delivered")


@dataclass(frozen=True)
class Cancellation:
    """What cancelling did with the money: refunded through the provider, or to refund by hand."""

    refunded: list[Payment]
    by_hand: list[Payment]


def cancel_order(settings: Settings, mailer: Mailer, order: Order, author: str, reason: str) -> Cancellation:
    """Cancel an order at any stage before completion (CONTRACT §10): the open quote is withdrawn, every
    captured payment refunded, every pending deadline voided; the customer is told why, the
    coordinators what became of the money."""
    if order.request.status not in CANCELLABLE:
        raise OrderError(f"order #{order.number} is {order.request.status}: only an order not yet completed, "
                         "declined or cancelled can be cancelled")
    withdraw_open_quote(mailer.session, order, "with the order", "see the order again")
    refunded, by_hand = refund_payments(settings, order)
    for refund in refunded:
        record_event(order.request, "refund", f"{format_amount(-refund.amount)} {refund.currency} refunded by "
                     f"{refund.provider} ({refund.transaction_id})")
    for payment in by_hand:
        record_event(order.request, "refund-by-hand", f"{format_amount(payment.amount)} {payment.currency} "
                     f"({payment.method}{', ' + payment.transaction_id if payment.transaction_id else ''}) "
                     "to refund by hand")
    subscription = order.subscription
    if subscription is not None and subscription.status != "inactive":
        terminate(mailer.session, mailer, order, True, author)
    set_status(order, "cancelled", author)
    record_event(order.request, "cancelled", f"by {author}" + (f": {reason}" if reason else ""))
    _closed(mailer.session, order, "order cancelled")
    money = {"reason": reason, "refunded": format_amount(-sum((r.amount for r in refunded), ZERO)),
             "by_hand": [{"amount": p.amount, "currency": p.currency, "method": p.method} for p in by_hand]}
    tell_customer(mailer, order, "order_cancelled", money)
    tell_coordinators(mailer, order, "order_cancelled", {**money, "by": author}, author=author)
    return Cancellation(refunded, by_hand)


WORKING = ("confirmed", "in-progress", "shipped")  # confirmed, and not delivered yet
REVIEW_LIMIT = 2000


def _confirmed_before(order: Order) -> bool:
    return order.decided_at is not None and order.request.status in WORKING


def set_due_date(settings: Settings, mailer: Mailer, order: Order, due_at: datetime, author: str) -> None:
    """``#due``: the delivery deadline (and its reminder) of an order not delivered yet."""
    if order.request.status not in (*OPEN, *WORKING):
        raise OrderError(f"order #{order.number} is {order.request.status}: a delivery date is set before delivery")
    timeline.set_due(mailer.session, settings, order, due_at)
    record_event(order.request, "due", f"delivery due {due_at.isoformat(timespec='minutes')} UTC, set by {author}")


def deliver_order(settings: Settings, mailer: Mailer, order: Order, author: str, text: str,
                  files: Sequence[MailFile]) -> None:
    """``#deliver``: delivered; the customer gets the text and the files with the order page link, and the
    review window opens (CONTRACT §10)."""
    if not _confirmed_before(order):
        raise OrderError(f"order #{order.number} is {order.request.status}: only a confirmed order not yet "
                         "delivered can be delivered")
    order.delivered_at, order.late = utcnow(), False
    order.revision_status = None if order.revision_status == "accepted" else order.revision_status
    set_status(order, "delivered", author)
    timeline.delivered(mailer.session, settings, order)
    set_label(order.request, AWAITING_RESPONSE, True)
    order.request.expected_response = "customer"
    tell_customer(mailer, order, "order_delivered", {"text": text, "files": [f.filename for f in files],
                                                     **_page(settings, order)}, files=files)


def _page(settings: Settings, order: Order) -> dict[str, object]:
    days = timeline.times_of(settings, order).review_days
    return {"review_days": f"{days:g}" if days else ""}


def start_processing(mailer: Mailer, order: Order, author: str) -> None:
    """``#status in-progress`` on an order: the team is at work on it, and the customer is told so."""
    if order.request.status not in OPEN:
        raise OrderError(f"order #{order.number} is {order.request.status}: only a pending order goes in progress "
                         "(a confirmed one is shipped with #ship)")
    if order.request.status != "in-progress":
        set_status(order, "in-progress", author)
        tell_customer(mailer, order, "order_processing", {})


def complete_by_customer(settings: Settings, mailer: Mailer, order: Order, rating: int | None, review: str) -> None:
    """The customer completes a delivered order from its page, with a rating and a review if they wish."""
    if order.request.status != "delivered":
        raise OrderError(f"order #{order.number} is {order.request.status}: it can be completed once delivered")
    order.review_rating, order.review_text = rating, review.strip()[:REVIEW_LIMIT] or None
    order.reviewed_at = order.completed_at = utcnow()
    set_status(order, "completed", order.customer.email)
    _closed(mailer.session, order, "completed by the customer")
    stars = f"{rating}/5" if rating else "no rating"
    record_event(order.request, "review", f"{stars}" + (f": {order.review_text}" if order.review_text else ""))
    tell_coordinators(mailer, order, "order_completed", {"rating": rating, "review": order.review_text or "",
                                                          "by_customer": True})


def complete_unreviewed(mailer: Mailer, order: Order, days: float) -> None:
    """The review window closed in silence: completed without a review."""
    order.completed_at = utcnow()
    set_status(order, "completed", "the gateway")
    _closed(mailer.session, order, "review window over")
    record_event(order.request, "review", f"none within {days:g} days: completed without a review")
    tell_customer(mailer, order, "order_completed", {"by_customer": False, "silent": True})
    tell_coordinators(mailer, order, "order_completed", {"rating": None, "review": "", "by_customer": False})


def ask_revision(settings: Settings, mailer: Mailer, order: Order, reason: str) -> None:
    """The customer asks a revision of a delivered order within its review window."""
    if order.request.status != "delivered" or order.revision_status == "requested":
        raise OrderError(f"order #{order.number} is {order.request.status}: a revision is asked of a delivered order")
    order.revision_status, order.revision_reason = "requested", reason.strip()[:REVIEW_LIMIT]
    record_event(order.request, "revision", f"asked by {order.customer.email}: {order.revision_reason}")
    timeline.revision_asked(mailer.session, settings, order)
    order.request.expected_response = "coordinator"
    tell_coordinators(mailer, order, "revision_requested", {"reason": order.revision_reason})


def answer_revision(settings: Settings, mailer: Mailer, order: Order, accept: bool, reason: str, author: str) -> None:
    """``#revision accept|refuse``: back to work to deliver again, or back to delivered (review window anew)."""
    if order.revision_status != "requested":
        raise OrderError(f"order #{order.number} has no revision request to answer")
    order.revision_status = "accepted" if accept else "refused"
    record_event(order.request, "revision", f"{order.revision_status} by {author}" + (f": {reason}" if reason else ""))
    timeline.revision_answered(mailer.session, settings, order, accept)
    if accept:
        set_status(order, "in-progress", author)
        order.request.expected_response = "coordinator"
    else:
        order.request.expected_response = "customer"
    tell_customer(mailer, order, "revision_answered", {"accepted": accept, "reason": reason,
                                                      **_page(settings, order)})


def ask_cancellation(settings: Settings, mailer: Mailer, order: Order, reason: str) -> None:
    """The customer asks to cancel from the order page, between placement and delivery."""
    if order.request.status not in (*OPEN, *WORKING) or order.cancellation_status == "requested":
        raise OrderError(f"order #{order.number} is {order.request.status}: a cancellation is asked before delivery")
    order.cancellation_status, order.cancellation_by = "requested", order.customer.email
    order.cancellation_reason = reason.strip()[:REVIEW_LIMIT]
    record_event(order.request, "cancellation", f"asked by {order.customer.email}: {order.cancellation_reason}")
    order.request.expected_response = "coordinator"
    tell_coordinators(mailer, order, "cancellation_requested", {"reason": order.cancellation_reason})


def answer_cancellation(settings: Settings, mailer: Mailer, order: Order, accept: bool, reason: str,
                        author: str) -> None:
    """``#cancellation accept|refuse``: the order is cancelled (and refunded), or goes on; the customer is told."""
    if order.cancellation_status != "requested":
        raise OrderError(f"order #{order.number} has no cancellation request to answer")
    order.cancellation_status = "accepted" if accept else "refused"
    record_event(order.request, "cancellation", f"{order.cancellation_status} by {author}"
                 + (f": {reason}" if reason else ""))
    if accept:
        cancel_order(settings, mailer, order, author, reason or order.cancellation_reason or "")
    else:
        tell_customer(mailer, order, "cancellation_refused", {"reason": reason, **_page(settings, order)})
