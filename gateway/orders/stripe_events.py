"""Stripe's webhook events applied to orders (CONTRACT §10): payments, failures and refunds that happen
on Stripe's side (a Checkout page paid, a card declined later, a refund made in the dashboard).

Each event is applied once: its id is kept (``ProviderEvent``) in the transaction that applies it,
so Stripe's retries and a replayed event change nothing more. A payment is never recorded twice
either: the PaymentIntent id is the payment's transaction id, which ``#confirm``'s own charge
recorded already when it made the payment.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.helpdesk import record_event
from gateway.models import ProviderEvent
from gateway.notify import Mailer
from gateway.orders import timeline
from gateway.orders.mail import tell_coordinators
from gateway.orders.models import Order, Payment
from gateway.orders.money import format_amount
from gateway.payments.ledger import refund_comment, update_payment_status

PROVIDER = "stripe"


def _amount(cents: object) -> Decimal:
    """Stripe's amounts are integers of the smallest unit (cents)."""
    return (Decimal(int(str(cents or 0))) / 100).quantize(Decimal("0.01"))


def _order(session: Session, thing: dict[str, Any]) -> Order | None:
    number = (thing.get("metadata") or {}).get("order")
    if number and str(number).isdigit():
        return session.get(Order, int(number))
    intent = thing.get("payment_intent")
    if intent:
        payment = session.scalars(select(Payment).where(Payment.provider == PROVIDER,
                                                        Payment.transaction_id == str(intent))).first()
        return session.get(Order, payment.order_id) if payment else None
    return None


def _paid(session: Session, order: Order, intent: str, amount: Decimal, currency: str) -> str:
    if any(p.transaction_id == intent and p.status == "succeeded" for p in order.payments):
        return f"order #{order.number}: payment {intent} recorded already"
    order.payments.append(Payment(method="card", provider=PROVIDER, amount=amount, currency=currency.upper(),
                                  status="succeeded", transaction_id=intent, comment="Stripe webhook"))
    update_payment_status(order)
    record_event(order.request, "payment", f"{format_amount(amount)} {currency.upper()} paid on Stripe ({intent}); "
                 f"{order.payment_status}")
    if order.payment_status == "paid":
        timeline.paid(session, order)
    return f"order #{order.number}: {format_amount(amount)} {currency.upper()} recorded"


def _failed(mailer: Mailer, order: Order, intent: dict[str, Any]) -> str:
    error = intent.get("last_payment_error") or {}
    reason = str(error.get("message") or error.get("code") or "declined")
    payment = Payment(method="card", provider=PROVIDER, amount=_amount(intent.get("amount")),
                      currency=str(intent.get("currency", order.currency)).upper(), status="declined",
                      transaction_id=str(intent.get("id", "")), comment=reason)
    order.payments.append(payment)
    record_event(order.request, "payment-declined", f"{format_amount(payment.amount)} {payment.currency} on Stripe: "
                 f"{reason}")
    tell_coordinators(mailer, order, "payment_failed", {"payment": payment, "reason": reason,
                                                        "amount": format_amount(payment.amount)})
    return f"order #{order.number}: payment declined ({reason})"


def _refunded(order: Order, charge: dict[str, Any]) -> str:
    intent = str(charge.get("payment_intent") or "")
    total = _amount(charge.get("amount_refunded"))
    known = -sum((p.amount for p in order.payments if p.amount < 0 and p.comment == refund_comment(intent)),
                 Decimal("0.00"))
    if total <= known:
        return f"order #{order.number}: refund of {intent} recorded already"
    refund = Payment(method="card", provider=PROVIDER, amount=-(total - known),
                     currency=str(charge.get("currency", order.currency)).upper(), status="succeeded",
                     transaction_id=str(charge.get("id", "")), comment=refund_comment(intent))
    order.payments.append(refund)
    update_payment_status(order)
    record_event(order.request, "refund", f"{format_amount(-refund.amount)} {refund.currency} refunded on Stripe; "
                 f"{order.payment_status}")
    return f"order #{order.number}: {format_amount(-refund.amount)} {refund.currency} refunded"


def apply_event(session: Session, mailer: Mailer, event: dict[str, Any]) -> str:
    """Apply one verified event once; what it did (``"ignored"`` for a kind the gateway does not use)."""
    event_id, kind = str(event.get("id", "")), str(event.get("type", ""))
    seen = ProviderEvent(provider=PROVIDER, event_id=event_id, kind=kind)
    try:
        with session.begin_nested():
            session.add(seen)
            session.flush()
    except IntegrityError:
        return f"event {event_id} applied already"
    thing = (event.get("data") or {}).get("object") or {}
    order = _order(session, thing)
    if kind not in ("payment_intent.succeeded", "checkout.session.completed", "payment_intent.payment_failed",
                    "charge.refunded"):
        outcome = "ignored"
    elif order is None:
        outcome = "names no order of this gateway"
    elif kind == "payment_intent.succeeded":
        outcome = _paid(session, order, str(thing.get("id")), _amount(thing.get("amount_received")),
                        str(thing.get("currency", order.currency)))
    elif kind == "checkout.session.completed":
        outcome = (_paid(session, order, str(thing.get("payment_intent")), _amount(thing.get("amount_total")),
                         str(thing.get("currency", order.currency)))
                   if thing.get("payment_status") == "paid" else "checkout not paid yet")
    elif kind == "payment_intent.payment_failed":
        outcome = _failed(mailer, order, thing)
    else:
        outcome = _refunded(order, thing)
    seen.outcome = outcome
    return outcome
