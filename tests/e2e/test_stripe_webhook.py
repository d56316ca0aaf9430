"""``POST /webhooks/stripe`` against a running ``gateway serve``: signed as Stripe signs (an HMAC-SHA256 of
``timestamp.body`` with the endpoint secret, computed here independently of the gateway), applied once."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Gateway, body_text, write_home
from test_orders_in_time import ALICE, new_order, order

SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = Gateway(write_home(tmp_path / "home", sections=f'[payments]\nstripe_webhook_secret = "{SECRET}"\n'))
    running.start()
    running.add_person(ALICE, "coordinator", "en")
    yield running
    if running.process is not None:
        assert running.stop() == 0


def send(gw: Gateway, event: dict[str, Any], secret: str = SECRET, at: float | None = None) -> httpx.Response:
    body = json.dumps(event).encode()
    stamp = int(at if at is not None else time.time())
    signature = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return httpx.post(f"http://127.0.0.1:{gw.http_port}/webhooks/stripe", content=body, timeout=30,
                      headers={"Stripe-Signature": f"t={stamp},v1={signature}", "Content-Type": "application/json"})


def event(event_id: str, kind: str, thing: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": thing}}


def test_stripe_payments_failures_and_refunds_apply_once_and_forgeries_get_400(shop: Gateway) -> None:
    number = new_order(shop, "card")
    paid = event("evt_1", "payment_intent.succeeded", {"id": "pi_1", "object": "payment_intent",
                                                       "amount_received": 12000, "currency": "eur",
                                                       "metadata": {"order": str(number)}})
    assert send(shop, paid, secret="whsec_wrong").status_code == 400
    assert send(shop, paid, at=time.time() - 3600).status_code == 400, "an old signature is a replay"
    assert order(shop, number)["payment_status"] == "unpaid"
    answered = send(shop, paid)
    assert answered.status_code == 200 and "120.00 EUR recorded" in answered.json()["outcome"]
    assert "applied already" in send(shop, paid).json()["outcome"]
    checkout = event("evt_2", "checkout.session.completed", {"id": "cs_1", "payment_intent": "pi_1",
                                                             "payment_status": "paid", "amount_total": 12000,
                                                             "currency": "eur", "metadata": {"order": str(number)}})
    assert "recorded already" in send(shop, checkout).json()["outcome"]
    assert [p["amount"] for p in shop.show(number)["payments"]] == ["120.00"]
    assert order(shop, number)["payment_status"] == "paid"
    refund = event("evt_3", "charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 4000,
                                                "currency": "eur"})
    assert "40.00 EUR refunded" in send(shop, refund).json()["outcome"]
    full = event("evt_4", "charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 12000,
                                              "currency": "eur"})
    assert "80.00 EUR refunded" in send(shop, full).json()["outcome"], "the rest, not the total again"
    assert [p["amount"] for p in shop.show(number)["payments"]] == ["120.00", "-40.00", "-80.00"]
    assert order(shop, number)["payment_status"] == "refunded"
    declined = event("evt_5", "payment_intent.payment_failed", {
        "id": "pi_2", "amount": 12000, "currency": "eur", "metadata": {"order": str(number)},
        "last_payment_error": {"code": "card_declined", "message": "Your card was declined."}})
    assert "declined" in send(shop, declined).json()["outcome"]
    shop.wait_idle()
    assert any("Your card was declined." in body_text(m) for m in shop.mails_to(ALICE))
    other = event("evt_6", "customer.created", {"id": "cus_1"})
    assert send(shop, other).json()["outcome"] == "ignored"
