"""The ``PaymentProvider`` interface: charge, refund, payment link.

Like dramatiq's middleware, the base class does nothing useful by default, so a provider
implements only what it can: the manual provider charges nothing and has no link.
Providers see plain values, never database rows; ``gateway.payments.ledger`` records
every attempt as a ``Payment`` row.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class ChargeRequest:
    """What a provider needs to take money for one order."""

    order_number: int
    amount: Decimal
    currency: str
    customer_email: str
    description: str = ""
    card_reference: str | None = None  # a provider's saved card (a Stripe PaymentMethod id)


@dataclass(frozen=True)
class ChargeResult:
    status: str  # succeeded, declined, failed
    transaction_id: str = ""
    message: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


class PaymentProvider:
    """Takes money for orders. ``name`` is what payment rows record as their provider."""

    name = "none"
    charges_cards = False

    def charge(self, charge: ChargeRequest) -> ChargeResult:
        """Take ``charge.amount`` now; a decline is a result, never an exception."""
        return ChargeResult("failed", message=f"the {self.name} provider does not charge cards")

    def refund(self, transaction_id: str, amount: Decimal, currency: str) -> ChargeResult:
        return ChargeResult("failed", message=f"the {self.name} provider cannot refund; refund by hand")

    def payment_link(self, charge: ChargeRequest) -> str | None:
        """A link where the customer can pay, or None when payment happens elsewhere."""
        return None
