"""Card payments through Stripe, with the official ``stripe`` package.

``charge`` confirms a PaymentIntent off-session on the card the shop saved for the
order (``card_reference``, a PaymentMethod id); ``payment_link`` opens a Checkout
Session for orders without one. A declined card is a ``CardError`` (HTTP 402): a
result, not an exception. ``api_base`` lets tests replay recorded responses.
"""

from __future__ import annotations

from decimal import Decimal

import stripe

from gateway.orders.money import cents
from gateway.payments.base import ChargeRequest, ChargeResult, PaymentProvider


class StripeProvider(PaymentProvider):
    name = "stripe"
    charges_cards = True

    def __init__(self, api_key: str, api_base: str = "") -> None:
        self.client = stripe.StripeClient(api_key, base_addresses={"api": api_base} if api_base else None,
                                          max_network_retries=0)

    def charge(self, charge: ChargeRequest) -> ChargeResult:
        if not charge.card_reference:
            return ChargeResult("failed", message="no saved card for this order: send the payment link (#remind)")
        try:
            intent = self.client.v1.payment_intents.create(params={
                "amount": cents(charge.amount), "currency": charge.currency.lower(),
                "payment_method": charge.card_reference, "confirm": True, "off_session": True,
                "description": charge.description or f"Order {charge.order_number}",
                "receipt_email": charge.customer_email,
                "metadata": {"order": str(charge.order_number)},
            }, options={"idempotency_key": f"order-{charge.order_number}-{cents(charge.amount)}"})
        except stripe.CardError as error:
            return ChargeResult("declined", transaction_id=_intent_id(error), message=error.user_message or str(error))
        except stripe.StripeError as error:
            return ChargeResult("failed", message=f"Stripe: {error.user_message or error}")
        if intent.status == "succeeded":
            return ChargeResult("succeeded", transaction_id=intent.id)
        return ChargeResult("failed", transaction_id=intent.id, message=f"payment intent is {intent.status}")

    def refund(self, transaction_id: str, amount: Decimal, currency: str) -> ChargeResult:
        try:
            refund = self.client.v1.refunds.create(params={"payment_intent": transaction_id, "amount": cents(amount)})
        except stripe.StripeError as error:
            return ChargeResult("failed", message=f"Stripe: {error.user_message or error}")
        return ChargeResult("succeeded" if refund.status in ("succeeded", "pending") else "failed",
                            transaction_id=refund.id, message=refund.status or "")

    def payment_link(self, charge: ChargeRequest) -> str | None:
        try:
            session = self.client.v1.checkout.sessions.create(params={
                "mode": "payment", "customer_email": charge.customer_email,
                "metadata": {"order": str(charge.order_number)},
                "line_items": [{"quantity": 1, "price_data": {
                    "currency": charge.currency.lower(), "unit_amount": cents(charge.amount),
                    "product_data": {"name": charge.description or f"Order {charge.order_number}"}}}],
            })
        except stripe.StripeError:
            return None
        return session.url


def _intent_id(error: stripe.CardError) -> str:
    body = error.json_body if isinstance(error.json_body, dict) else {}
    intent = body.get("error", {}).get("payment_intent") or {}
    return str(intent.get("id", "")) if isinstance(intent, dict) else ""
