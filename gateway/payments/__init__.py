"""Payment providers: ``manual`` (cash, transfer, invoice), ``fake-card`` and ``stripe`` for cards."""

from __future__ import annotations

from gateway.payments.base import ChargeRequest, ChargeResult, PaymentProvider
from gateway.payments.fake_card import FakeCardProvider
from gateway.payments.manual import ManualProvider
from gateway.settings import Settings

__all__ = ["ChargeRequest", "ChargeResult", "PaymentProvider", "provider_for"]


def provider_for(settings: Settings, method: str) -> PaymentProvider:
    """Who takes the money for a payment method: cards go to the configured card provider."""
    if method != "card" or settings.payment_provider == "manual":
        return ManualProvider()
    if settings.payment_provider == "fake-card":
        return FakeCardProvider()
    from gateway.payments.stripe_card import StripeProvider  # here: the Stripe client is 25 MB, loaded where used

    return StripeProvider(settings.stripe_api_key, settings.stripe_api_base)
