"""Every payment attempt is a row: charges through a provider and payments recorded by hand.

Runs inside the caller's transaction; the order's ``amount_paid`` and ``payment_status``
follow from its successful rows.
"""

from __future__ import annotations

from decimal import Decimal

from gateway.orders.models import ZERO, Order, Payment
from gateway.payments import provider_for
from gateway.payments.base import ChargeRequest, PaymentProvider
from gateway.settings import Settings


def charge_request(order: Order, amount: Decimal | None = None) -> ChargeRequest:
    return ChargeRequest(order_number=order.number, amount=order.amount_due if amount is None else amount,
                         currency=order.currency, customer_email=order.customer.email,
                         description=f"{order.request.subject} (#{order.number})",
                         card_reference=order.card_reference)


def charge_order(settings: Settings, order: Order, amount: Decimal,
                 provider: PaymentProvider | None = None) -> Payment:
    """Charge ``amount`` on the order's card; the row records the outcome, declined or not."""
    provider = provider or provider_for(settings, order.payment_method)
    result = provider.charge(charge_request(order, amount))
    payment = Payment(method=order.payment_method, provider=provider.name, amount=amount, currency=order.currency,
                      status=result.status, transaction_id=result.transaction_id, comment=result.message,
                      attempts=1 + sum(1 for p in order.payments if p.provider == provider.name))
    order.payments.append(payment)
    update_payment_status(order)
    return payment


def record_payment(order: Order, amount: Decimal, reference: str, author: str) -> Payment:
    """Money received by other means (cash, transfer, invoice): a ``#paid`` line."""
    payment = Payment(method=order.payment_method, provider="manual", amount=amount, currency=order.currency,
                      status="succeeded", transaction_id=reference, comment=f"recorded by {author}")
    order.payments.append(payment)
    update_payment_status(order)
    return payment


def refund_comment(transaction_id: str) -> str:
    """What a refund row says of the payment it gives back: how a later refund of it finds the earlier ones."""
    return f"refund of {transaction_id}"


def refund_payments(settings: Settings, order: Order) -> tuple[list[Payment], list[Payment]]:
    """Give back every captured payment through the provider that took it: a refund is a payment row
    with a negative amount (CONTRACT §10). Returns (the refunds made, the payments to refund by hand:
    cash, transfers, and any refund a provider refused)."""
    refunds: list[Payment] = []
    by_hand: list[Payment] = []
    for payment in [p for p in order.payments if p.status == "succeeded" and p.amount > ZERO]:
        provider = provider_for(settings, payment.method) if payment.provider != "manual" else None
        result = provider.refund(payment.transaction_id, payment.amount, payment.currency) if provider else None
        if result is None or not result.succeeded:
            by_hand.append(payment)
            continue
        refund = Payment(method=payment.method, provider=payment.provider, amount=-payment.amount,
                         currency=payment.currency, status="succeeded", transaction_id=result.transaction_id,
                         comment=refund_comment(payment.transaction_id))
        order.payments.append(refund)
        refunds.append(refund)
    update_payment_status(order)
    return refunds, by_hand


def update_payment_status(order: Order) -> None:
    """Paid is what succeeded, refunds (negative rows) deducted; ``refunded`` once they gave it all back."""
    order.amount_paid = sum((p.amount for p in order.payments if p.status == "succeeded"), ZERO)
    refunded = any(p.amount < ZERO and p.status == "succeeded" for p in order.payments)
    if refunded and order.amount_paid <= ZERO:
        order.payment_status = "refunded"
    elif order.amount_paid <= ZERO:
        order.payment_status = "unpaid"
    elif order.amount_paid < order.total:
        order.payment_status = "partial"
    else:
        order.payment_status = "paid"
