"""A card provider for tests and demos: deterministic, and no network.

It follows Stripe's test cards: the card ``tok_chargeDeclined`` is declined, ``tok_visa`` (and any other)
is charged. Amounts ending in ``.13`` are declined too, whatever the card. A charge's transaction id is
derived from the order, the amount and the card, so the same charge has the same id.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from gateway.orders.money import format_amount
from gateway.payments.base import ChargeRequest, ChargeResult, PaymentProvider

DECLINED_CENTS = "13"
DECLINED_CARD = "tok_chargeDeclined"


class FakeCardProvider(PaymentProvider):
    name = "fake-card"
    charges_cards = True

    def charge(self, charge: ChargeRequest) -> ChargeResult:
        amount = format_amount(charge.amount)
        if charge.card_reference == DECLINED_CARD:
            return ChargeResult("declined", message="Your card was declined. (tok_chargeDeclined)")
        if amount.endswith("." + DECLINED_CENTS):
            return ChargeResult("declined", message="card declined (fake-card declines amounts ending in .13)")
        digest = hashlib.sha256(f"{charge.order_number}:{amount}:{charge.currency}:{charge.card_reference}:"
                                f"{charge.description}".encode()).hexdigest()[:16]
        return ChargeResult("succeeded", transaction_id=f"fake_{digest}")

    def refund(self, transaction_id: str, amount: Decimal, currency: str) -> ChargeResult:
        return ChargeResult("succeeded", transaction_id=f"{transaction_id}_refund")

    def payment_link(self, charge: ChargeRequest) -> str | None:
        return f"https://fake-card.invalid/pay/{charge.order_number}/{format_amount(charge.amount)}"
