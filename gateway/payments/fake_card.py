"""A card provider for tests and demos: deterministic, and no network.

Amounts ending in ``.13`` are declined; every other charge succeeds with a
transaction id derived from the order and the amount.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from gateway.orders.money import format_amount
from gateway.payments.base import ChargeRequest, ChargeResult, PaymentProvider

DECLINED_CENTS = "13"


class FakeCardProvider(PaymentProvider):
    name = "fake-card"
    charges_cards = True

    def charge(self, charge: ChargeRequest) -> ChargeResult:
        amount = format_amount(charge.amount)
        if amount.endswith("." + DECLINED_CENTS):
            return ChargeResult("declined", message="card declined (fake-card declines amounts ending in .13)")
        digest = hashlib.sha256(f"{charge.order_number}:{amount}:{charge.currency}".encode()).hexdigest()[:16]
        return ChargeResult("succeeded", transaction_id=f"fake_{digest}")

    def refund(self, transaction_id: str, amount: Decimal, currency: str) -> ChargeResult:
        return ChargeResult("succeeded", transaction_id=f"{transaction_id}_refund")

    def payment_link(self, charge: ChargeRequest) -> str | None:
        return f"https://fake-card.invalid/pay/{charge.order_number}/{format_amount(charge.amount)}"
