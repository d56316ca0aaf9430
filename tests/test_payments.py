"""Payment providers: manual charges nothing, fake-card is deterministic, Stripe replays recorded answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from gateway.payments.base import ChargeRequest
from gateway.payments.fake_card import FakeCardProvider
from gateway.payments.manual import ManualProvider
from gateway.payments.stripe_card import StripeProvider

RECORDED = Path(__file__).parent / "fixtures" / "stripe"


def charge(amount: str, card: str | None = "pm_card_visa") -> ChargeRequest:
    return ChargeRequest(order_number=1, amount=Decimal(amount), currency="EUR", customer_email="jean@client.example",
                         description="Site vitrine (#1)", card_reference=card)


class RecordedStripe:
    """A loopback server answering Stripe's paths with recorded bodies; it keeps what it was sent."""

    def __init__(self) -> None:
        self.answers: dict[str, tuple[int, str]] = {}
        self.received: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        recorded = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                recorded.received.append((self.path, form, dict(self.headers)))
                status, fixture = recorded.answers[self.path]
                body = (RECORDED / fixture).read_bytes()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Request-Id", "req_recorded")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def recorded_stripe() -> Iterator[RecordedStripe]:
    stripe = RecordedStripe()
    stripe.thread.start()
    yield stripe
    stripe.server.shutdown()
    stripe.server.server_close()


def test_the_manual_provider_charges_nothing_and_has_no_link() -> None:
    provider = ManualProvider()
    assert not provider.charges_cards
    assert provider.charge(charge("450.00")).status == "failed"
    assert provider.payment_link(charge("450.00")) is None


def test_fake_card_declines_amounts_ending_in_13_and_accepts_the_others() -> None:
    provider = FakeCardProvider()
    declined = provider.charge(charge("450.13"))
    assert declined.status == "declined" and declined.transaction_id == ""
    accepted = provider.charge(charge("450.00"))
    assert accepted.succeeded and accepted.transaction_id.startswith("fake_")
    assert provider.charge(charge("450.00")) == accepted, "the same charge gives the same transaction id"


def test_stripe_charges_the_saved_card_in_cents(recorded_stripe: RecordedStripe) -> None:
    recorded_stripe.answers["/v1/payment_intents"] = (200, "payment_intent_succeeded.json")
    result = StripeProvider("sk_test_recorded", recorded_stripe.url).charge(charge("450.00"))
    assert result.succeeded
    assert result.transaction_id == "pi_3QxY2bL8x1Demo0A1b2c3d4e"
    path, form, headers = recorded_stripe.received[0]
    assert form["amount"] == ["45000"] and form["currency"] == ["eur"]
    assert form["payment_method"] == ["pm_card_visa"] and form["confirm"] == ["true"]
    assert form["metadata[order]"] == ["1"]
    assert headers["Authorization"] == "Bearer sk_test_recorded"
    assert headers["Idempotency-Key"] == "order-1-45000", "a retried charge is never taken twice"


def test_a_card_stripe_declines_is_a_result_with_the_payment_intent(recorded_stripe: RecordedStripe) -> None:
    recorded_stripe.answers["/v1/payment_intents"] = (402, "payment_intent_card_declined.json")
    result = StripeProvider("sk_test_recorded", recorded_stripe.url).charge(charge("450.13"))
    assert result.status == "declined"
    assert result.transaction_id == "pi_3QxY2bL8x1Demo0A0declined"
    assert "declined" in result.message


def test_stripe_without_a_saved_card_asks_for_the_payment_link(recorded_stripe: RecordedStripe) -> None:
    result = StripeProvider("sk_test_recorded", recorded_stripe.url).charge(charge("450.00", card=None))
    assert result.status == "failed" and "#remind" in result.message
    assert recorded_stripe.received == [], "nothing was sent to Stripe"


def test_stripe_refunds_and_opens_checkout_links(recorded_stripe: RecordedStripe) -> None:
    recorded_stripe.answers["/v1/refunds"] = (200, "refund_succeeded.json")
    recorded_stripe.answers["/v1/checkout/sessions"] = (200, "checkout_session_created.json")
    provider = StripeProvider("sk_test_recorded", recorded_stripe.url)
    refund = provider.refund("pi_3QxY2bL8x1Demo0A1b2c3d4e", Decimal("450.00"), "EUR")
    assert refund.succeeded and refund.transaction_id == "re_3QxY2bL8x1Demo0A1refund1"
    link = provider.payment_link(charge("450.00"))
    assert link == "https://checkout.stripe.com/c/pay/cs_test_a1DemoCheckoutSession"
    _, form, _ = recorded_stripe.received[-1]
    assert form["line_items[0][price_data][unit_amount]"] == ["45000"]
    assert json.loads((RECORDED / "checkout_session_created.json").read_text())["mode"] == form["mode"][0]
