"""An order's way through the inbox and the shop: confirm, decline, pay, ship, complete.

Each step runs inside the caller's transaction, raises ``OrderError`` when it cannot
apply (the command then refuses the whole mail), and writes its mails to the outbox.
A declined card is not an error: the attempt is kept as a payment row, the
coordinators are told, and the order stays unconfirmed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.helpdesk import record_event
from gateway.orders.card import OrderError, set_label, set_status
from gateway.orders.mail import tell_coordinators, tell_customer
from gateway.orders.models import PAYMENT_METHODS, ZERO, Order, Payment
from gateway.orders.money import format_amount
from gateway.orders.quotes import AWAITING_RESPONSE
from gateway.orders.timeline import decided, ended
from gateway.outbound.notify import Mailer
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


def _payment_link(settings: Settings, order: Order) -> str | None:
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
    if order.payment_method == "card" and provider.charges_cards and order.amount_due > ZERO:
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
    decided(mailer.session, order, f"confirmed by {author}")
    set_label(order.request, AWAITING_RESPONSE, False)
    tell_customer(mailer, order, "order_confirmed", {"charged": payment is not None,
                                                     "payment_link": _payment_link(settings, order)})
    return Confirmation("confirmed", payment)


def decline_order(mailer: Mailer, order: Order, author: str, reason: str) -> None:
    """Decline a pending or in-progress order; an open quote is withdrawn with it; the customer is told why."""
    if order.request.status not in OPEN:
        raise OrderError(f"order #{order.number} is {order.request.status}: only a pending or in-progress order "
                         "can be declined")
    quote = order.open_quote
    if quote is not None:
        quote.status, quote.decided_at = "withdrawn", utcnow()
        record_event(order.request, "quote-withdrawn", f"quote v{quote.version} withdrawn with the order")
    set_status(order, "declined", author)
    order.decided_at = utcnow()
    decided(mailer.session, order, f"declined by {author}")
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


def record_paid(order: Order, amount: Decimal, reference: str, author: str) -> Payment:
    """Money received by cash, transfer or invoice: a payment row, and the payment status follows."""
    if amount <= ZERO:
        raise OrderError("a payment needs an amount above zero")
    if order.request.status in ("declined", "cancelled"):
        raise OrderError(f"order #{order.number} is {order.request.status}: no payment can be recorded")
    payment = record_payment(order, amount, reference, author)
    record_event(order.request, "payment", f"{format_amount(amount)} {order.currency} recorded by {author}"
                 + (f" ({reference})" if reference else "") + f"; {order.payment_status}")
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
    tell_customer(mailer, order, "payment_reminder", {"payment_link": _payment_link(settings, order)})


def ship_order(mailer: Mailer, order: Order, author: str, tracking: str = "") -> None:
    """A confirmed order is shipped; the customer is told, with the tracking reference."""
    if order.request.status != "confirmed":
        raise OrderError(f"order #{order.number} is {order.request.status}: only a confirmed order can be shipped")
    order.tracking = tracking or order.tracking
    order.shipped_at = utcnow()
    set_status(order, "shipped", author)
    tell_customer(mailer, order, "order_shipped", {"tracking": order.tracking or ""})


def complete_order(session: Session, order: Order, author: str, force: bool = False) -> None:
    """A confirmed or shipped order is completed once paid (``force`` completes it unpaid)."""
    if order.request.status not in ("confirmed", "shipped"):
        raise OrderError(f"order #{order.number} is {order.request.status}: only a confirmed or shipped order "
                         "can be completed")
    if order.payment_status != "paid" and not force:
        raise OrderError(f"order #{order.number} is not paid ({format_amount(order.amount_paid)} of "
                         f"{format_amount(order.total)} {order.currency}): record the payment with "
                         "#paid AMOUNT, or write #complete force")
    order.completed_at = utcnow()
    ended(session, order, "order completed")
    set_status(order, "completed", author + (" (forced, unpaid)" if order.payment_status != "paid" else ""))


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
    quote = order.open_quote
    if quote is not None:
        quote.status, quote.decided_at = "withdrawn", utcnow()
        record_event(order.request, "quote-withdrawn", f"quote v{quote.version} withdrawn with the order")
    refunded, by_hand = refund_payments(settings, order)
    for refund in refunded:
        record_event(order.request, "refund", f"{format_amount(-refund.amount)} {refund.currency} refunded by "
                     f"{refund.provider} ({refund.transaction_id})")
    for payment in by_hand:
        record_event(order.request, "refund-by-hand", f"{format_amount(payment.amount)} {payment.currency} "
                     f"({payment.method}{', ' + payment.transaction_id if payment.transaction_id else ''}) "
                     "to refund by hand")
    set_status(order, "cancelled", author)
    record_event(order.request, "cancelled", f"by {author}" + (f": {reason}" if reason else ""))
    ended(mailer.session, order, "order cancelled")
    set_label(order.request, AWAITING_RESPONSE, False)
    order.request.expected_response = None
    money = {"reason": reason, "refunded": format_amount(-sum((r.amount for r in refunded), ZERO)),
             "by_hand": [f"{format_amount(p.amount)} {p.currency} ({p.method})" for p in by_hand]}
    tell_customer(mailer, order, "order_cancelled", money)
    tell_coordinators(mailer, order, "order_cancelled", {**money, "by": author}, author=author)
    return Cancellation(refunded, by_hand)
