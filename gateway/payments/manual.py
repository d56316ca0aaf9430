"""Cash, transfer and invoice: nothing is charged; a coordinator records the money with ``#paid``."""

from __future__ import annotations

from gateway.payments.base import PaymentProvider


class ManualProvider(PaymentProvider):
    name = "manual"
