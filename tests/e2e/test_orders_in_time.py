"""Orders that live in time, end to end (CONTRACT §10): a ``gateway serve`` whose clock a test moves
with ``clock_file``, its sweep every second, its mails read from the outbox."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Gateway, body_text, mail, reply_address, write_home

CUSTOMER = "jean.dupont@client.example"
ALICE = "alice@shop.example"
HOUR = 3600


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = Gateway(write_home(tmp_path / "home", extra='clock_file = "clock"\nsweep_seconds = 1',
                                 orders_mailbox="acceptance_hours = 48",
                                 sections='[payments]\nprovider = "fake-card"\n')).start()
    running.add_person(ALICE, "coordinator", "en")
    yield running
    if running.process is not None:
        assert running.stop() == 0


def move_clock(gw: Gateway, seconds: float) -> None:
    """Now is ``seconds`` after the real time, for every process of the gateway."""
    (gw.home / "clock").write_text(str(seconds))


def new_order(gw: Gateway, method: str) -> int:
    path = gw.home / "order.json"
    path.write_text(json.dumps({"customer": {"email": CUSTOMER, "name": "Jean Dupont", "locale": "fr"},
                                "subject": "Logo", "payment_method": method,
                                "items": [{"description": "Logo", "quantity": 1, "unit_price": "120.00"}]}))
    line = gw.cli("orders", "create", str(path)).stdout
    return int(line.split("#")[1].split()[0])


def order(gw: Gateway, number: int) -> dict[str, object]:
    return dict(gw.show(number)["order"])  # type: ignore[arg-type]


def until(condition: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.2)


def answer(gw: Gateway, notification: object, text: str) -> None:
    gw.send(mail(f"Alice <{ALICE}>", reply_address(notification), "Re: commande", text))  # type: ignore[arg-type]
    gw.wait_idle()


def test_an_order_not_accepted_in_48_hours_is_cancelled_by_itself_and_both_sides_told(shop: Gateway) -> None:
    number = new_order(shop, "transfer")
    [notice] = shop.mails_to(ALICE)
    answer(shop, notice, "#paid 120 VIR-1\nPayé d'avance.")
    assert order(shop, number)["payment_status"] == "paid"
    assert [(d["kind"], d["state"]) for d in order(shop, number)["deadlines"]] == [("acceptance", "pending")]
    move_clock(shop, 47 * HOUR)
    time.sleep(2.5)  # two sweeps
    assert shop.show(number)["status"] == "in-progress", "the reply moved it on; not cancelled yet"
    move_clock(shop, 48 * HOUR + 60)
    until(lambda: shop.show(number)["status"] == "cancelled")
    shop.wait_idle()
    assert [(d["kind"], d["state"]) for d in order(shop, number)["deadlines"]] == [("acceptance", "done")]
    [to_customer] = [m for m in shop.mails_to(CUSTOMER) if "annulée" in str(m["Subject"])]
    assert "not accepted within 48 hours" in body_text(to_customer)
    assert "120.00 EUR (transfer)" in body_text(to_customer), "paid by transfer: refunded directly"
    [to_alice] = [m for m in shop.mails_to(ALICE) if "cancelled" in str(m["Subject"])]
    assert "To refund by hand: 120.00 EUR (transfer)" in body_text(to_alice)
    time.sleep(1.5)
    assert len([m for m in shop.mails_to(CUSTOMER) if "annulée" in str(m["Subject"])]) == 1, "once"


def test_a_coordinator_cancels_a_confirmed_card_order_and_the_card_is_refunded(shop: Gateway) -> None:
    number = new_order(shop, "card")
    [notice] = shop.mails_to(ALICE)
    answer(shop, notice, "#confirm")
    assert order(shop, number)["payment_status"] == "paid"
    answer(shop, notice, "#cancel Rupture de stock\nDésolée.")
    assert shop.show(number)["status"] == "cancelled"
    details = shop.show(number)
    assert [p["amount"] for p in details["payments"]] == ["120.00", "-120.00"]
    assert order(shop, number)["payment_status"] == "refunded"
    [to_customer] = [m for m in shop.mails_to(CUSTOMER) if "annulée" in str(m["Subject"])]
    text = body_text(to_customer)
    assert "Rupture de stock" in text and "120.00 EUR vous sont remboursés" in text
    assert [(d["kind"], d["state"]) for d in order(shop, number)["deadlines"]] == [("acceptance", "void")]
    move_clock(shop, 50 * HOUR)
    time.sleep(2.5)
    assert len([m for m in shop.mails_to(CUSTOMER) if "annulée" in str(m["Subject"])]) == 1
