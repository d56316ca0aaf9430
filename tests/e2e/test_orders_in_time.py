"""Orders that live in time, end to end (CONTRACT §10): a ``gateway serve`` whose clock a test moves
with ``clock_file``, its sweep every second, its mails read from the outbox."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Gateway, body_text, mail, reply_address, write_home

CUSTOMER = "jean.dupont@client.example"
ALICE = "alice@shop.example"
HOUR = 3600
DAY = 24 * HOUR


FAKE_CARD = '[payments]\nprovider = "fake-card"\n'
MARKETPLACE = "acceptance_hours = 48\ndelivery_days = 5\nreview_days = 7\nrevision_answer_hours = 48"


def start_market(home: Path, *, orders_mailbox: str, sections: str, moved_clock: bool = True) -> Gateway:
    """A running gateway whose orders mailbox has ``orders_mailbox``'s deadlines, Alice coordinating; links
    point at its own port; ``moved_clock``: its clock follows ``move_clock``, its sweep runs every second."""
    running = Gateway(write_home(home, extra='clock_file = "clock"\nsweep_seconds = 1' if moved_clock else "",
                                 orders_mailbox=orders_mailbox, sections=sections))
    running.env["GATEWAY_BASE_URL"] = f"http://127.0.0.1:{running.http_port}"
    running.start()
    running.add_person(ALICE, "coordinator", "en")
    return running


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = start_market(tmp_path / "home", orders_mailbox=MARKETPLACE, sections=FAKE_CARD)
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
    assert "120,00\xa0€ (virement)" in body_text(to_customer), "paid by transfer: refunded directly"
    [to_alice] = [m for m in shop.mails_to(ALICE) if "cancelled" in str(m["Subject"])]
    assert "To refund by hand: €120.00 (transfer)" in body_text(to_alice)
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
    assert "Rupture de stock" in text and "120,00\xa0€ vous sont remboursés" in text
    assert {d["state"] for d in order(shop, number)["deadlines"]} == {"void"}, "nothing more is due"
    move_clock(shop, 50 * HOUR)
    time.sleep(2.5)
    assert len([m for m in shop.mails_to(CUSTOMER) if "annulée" in str(m["Subject"])]) == 1


def page_link(gw: Gateway, message: object) -> str:
    """The order page link a mail carries, on this gateway's port (the site's base_url is another)."""
    match = re.search(r"https?://[^/\s]+(/order/[A-Za-z0-9_-]+)", body_text(message))  # type: ignore[arg-type]
    assert match, body_text(message)  # type: ignore[arg-type]
    return f"http://127.0.0.1:{gw.http_port}{match.group(1)}"


def post(link: str, action: str, **form: str) -> httpx.Response:
    return httpx.post(f"{link}/{action}", data=form, follow_redirects=False, timeout=30)


def confirmed_order(gw: Gateway) -> tuple[int, object]:
    number = new_order(gw, "card")
    [notice] = gw.mails_to(ALICE)
    answer(gw, notice, "#confirm")
    return number, notice


def test_deliver_then_the_customer_completes_with_a_rating_on_the_order_page(shop: Gateway) -> None:
    number, notice = confirmed_order(shop)
    assert [(d["kind"], d["state"]) for d in order(shop, number)["deadlines"]] == [
        ("acceptance", "void"), ("delivery-reminder", "pending"), ("delivery", "pending")]
    delivery = mail(f"Alice <{ALICE}>", reply_address(notice), "Re: commande",
                    "#deliver\nVoici le logo, en trois formats.")
    logo = bytes(range(256)) * 40
    delivery.add_attachment(logo, maintype="image", subtype="png", filename="logo été.png")
    shop.send(delivery)
    shop.wait_idle()
    assert shop.show(number)["status"] == "delivered"
    [delivered] = [m for m in shop.mails_to(CUSTOMER) if "livrée" in str(m["Subject"])]
    assert "Voici le logo, en trois formats." in body_text(delivered)
    [attached] = list(delivered.iter_attachments())
    assert (attached.get_filename(), attached.get_content_type(), attached.get_content()) == (
        "logo été.png", "image/png", logo), "the delivery's file, whole"
    assert shop.show(number)["comments"][-1]["attachments"][0]["filename"] == "logo été.png"
    link = page_link(shop, delivered)
    page = httpx.get(link, timeout=30)
    assert page.status_code == 200 and "Terminer la commande" in page.text and "Demander une révision" in page.text
    assert shop.show(number)["status"] == "delivered", "a GET never acts"
    done = post(link, "complete", rating="5", review="Parfait, merci !")
    assert done.status_code == 303 and done.headers["location"].endswith(link.rsplit("/", 1)[1])
    details = order(shop, number)
    assert shop.show(number)["status"] == "completed"
    assert (details["review"], details["deadlines"][-1]["state"]) == ({"rating": 5, "text": "Parfait, merci !"},
                                                                       "void")
    assert post(link, "complete", rating="1").status_code == 409, "once"
    assert order(shop, number)["review"] == {"rating": 5, "text": "Parfait, merci !"}
    shop.wait_idle()
    [to_alice] = [m for m in shop.mails_to(ALICE) if "completed" in str(m["Subject"])]
    assert "Rating: 5/5" in body_text(to_alice)
    forged = link[:-3] + ("abc" if not link.endswith("abc") else "xyz")
    assert httpx.get(forged, timeout=30).status_code == 404
    assert post(forged, "complete").status_code == 404


def test_a_revision_then_a_second_delivery_then_silence_completes_the_order(shop: Gateway) -> None:
    number, notice = confirmed_order(shop)
    answer(shop, notice, "#deliver\nPremière version.")
    [delivered] = [m for m in shop.mails_to(CUSTOMER) if "livrée" in str(m["Subject"])]
    link = page_link(shop, delivered)
    assert post(link, "revision", reason="").status_code == 422, "a revision needs its reason"
    assert post(link, "revision", reason="Le bleu est trop clair.").status_code == 303
    assert order(shop, number)["revision"] == {"reason": "Le bleu est trop clair.", "status": "requested"}
    shop.wait_idle()
    [asked] = [m for m in shop.mails_to(ALICE) if "Revision asked" in str(m["Subject"])]
    answer(shop, asked, "#revision accept")
    assert shop.show(number)["status"] == "in-progress"
    answer(shop, asked, "#deliver\nDeuxième version, bleu plus foncé.")
    assert shop.show(number)["status"] == "delivered"
    move_clock(shop, 7 * 24 * HOUR + 600)
    until(lambda: shop.show(number)["status"] == "completed")
    details = order(shop, number)
    assert details["review"] is None
    assert [d["state"] for d in details["deadlines"] if d["kind"] == "review"] == ["void", "done"]
    assert any("completed without a review" in e["detail"] for e in shop.show(number)["events"])


def test_due_date_reminder_and_late_flag_then_a_refused_revision_reopens_the_review_window(shop: Gateway) -> None:
    number, notice = confirmed_order(shop)
    answer(shop, notice, "#due bientôt")
    [refused] = [m for m in shop.mails_to(ALICE) if "Command refused" in str(m["Subject"])]
    assert "#due does not take 'bientôt'" in body_text(refused), "a date it cannot read is refused"
    answer(shop, notice, "#due 3d")
    details = order(shop, number)
    assert [(d["kind"], d["state"]) for d in details["deadlines"]] == [
        ("acceptance", "void"), ("delivery-reminder", "pending"), ("delivery", "pending"),
        ("delivery-reminder", "void"), ("delivery", "void")], "the mailbox's 5 days replaced by #due's 3"
    move_clock(shop, 2 * DAY + 600)  # the mailbox's default reminder: 24 hours before
    until(lambda: any("Delivery due" in str(m["Subject"]) for m in shop.mails_to(ALICE)))
    assert order(shop, number)["late"] is False
    move_clock(shop, 3 * DAY + 600)
    until(lambda: order(shop, number)["late"] is True)
    shop.wait_idle()
    assert [str(m["Subject"]) for m in shop.mails_to(ALICE) if "Late" in str(m["Subject"])] == [
        f"[#{number}] Late: order #{number}"]
    assert any("en retard" in str(m["Subject"]) for m in shop.mails_to(CUSTOMER))
    answer(shop, notice, "#deliver\nEnfin, le logo.")
    [delivered] = [m for m in shop.mails_to(CUSTOMER) if "livrée" in str(m["Subject"])]
    link = page_link(shop, delivered)
    assert post(link, "revision", reason="Trop petit.").status_code == 303
    shop.wait_idle()
    [asked] = [m for m in shop.mails_to(ALICE) if "Revision asked" in str(m["Subject"])]
    answer(shop, asked, "#revision refuse La taille est celle du devis.")
    assert shop.show(number)["status"] == "delivered"
    details = order(shop, number)
    assert details["revision"] == {"reason": "Trop petit.", "status": "refused"}
    assert [d["state"] for d in details["deadlines"] if d["kind"] == "review"] == ["void", "pending"], "restarted"
    [told] = [m for m in shop.mails_to(CUSTOMER) if "révision" in str(m["Subject"])]
    assert "La taille est celle du devis." in body_text(told)
    assert post(link, "revision", reason="Vraiment trop petit.").status_code == 303, "the window is open again"
    move_clock(shop, 5 * DAY + 1200)  # revision_answer_hours = 48 after the second request
    until(lambda: any("Revision unanswered" in str(m["Subject"]) for m in shop.mails_to(ALICE)))
    assert order(shop, number)["revision"] == {"reason": "Vraiment trop petit.", "status": "requested"}
    events = [(e["kind"], e["detail"]) for e in shop.show(number)["events"]]
    assert [kind for kind, _detail in events if kind in ("due", "late", "revision")] == [
        "due", "due", "late", "revision", "revision", "revision", "revision"]
    assert events[-1] == ("revision", "not answered within 48 hours: coordinators told")


def test_a_customers_cancellation_refused_then_another_accepted_and_refunded(shop: Gateway) -> None:
    number, notice = confirmed_order(shop)
    [confirmation] = [m for m in shop.mails_to(CUSTOMER) if "confirm" in str(m["Subject"]).lower()]
    link = page_link(shop, confirmation)
    assert post(link, "cancel", reason="Je n'en ai plus besoin.").status_code == 303
    assert post(link, "cancel", reason="Encore.").status_code == 409, "one request at a time"
    shop.wait_idle()
    [asked] = [m for m in shop.mails_to(ALICE) if "Cancellation asked" in str(m["Subject"])]
    answer(shop, asked, "#cancellation refuse Le travail est presque fini.")
    assert shop.show(number)["status"] == "confirmed"
    assert order(shop, number)["cancellation"]["status"] == "refused"
    [refused] = [m for m in shop.mails_to(CUSTOMER) if "annulation" in str(m["Subject"])]
    assert "Le travail est presque fini." in body_text(refused)
    assert post(link, "cancel", reason="Vraiment, annulez.").status_code == 303
    shop.wait_idle()
    asked = [m for m in shop.mails_to(ALICE) if "Cancellation asked" in str(m["Subject"])][-1]
    answer(shop, asked, "#cancellation accept")
    assert shop.show(number)["status"] == "cancelled"
    assert order(shop, number)["payment_status"] == "refunded"
    assert order(shop, number)["cancellation"] == {"requested_by": CUSTOMER, "reason": "Vraiment, annulez.",
                                                   "status": "accepted"}
    assert httpx.get(link, timeout=30).status_code == 200
    assert post(link, "cancel", reason="x").status_code == 409


def test_in_the_review_window_replies_by_mail_are_kept_private_and_answered_with_the_choices(shop: Gateway) -> None:
    number, notice = confirmed_order(shop)
    answer(shop, notice, "#deliver\nLe logo.")
    [delivered] = [m for m in shop.mails_to(CUSTOMER) if "livrée" in str(m["Subject"])]
    mails_before = len(shop.mails_to(CUSTOMER))
    answer(shop, notice, "Laissez-nous une bonne note, s'il vous plaît !")
    comment = shop.show(number)["comments"][-1]
    assert (comment["visibility"], comment["text"]) == ("private", "Laissez-nous une bonne note, s'il vous plaît !")
    assert len(shop.mails_to(CUSTOMER)) == mails_before, "the seller's reply does not reach the customer"
    [held] = [m for m in shop.mails_to(ALICE) if "Reply not sent" in str(m["Subject"])]
    assert "kept as a private comment" in body_text(held)
    shop.send(mail(f"Jean <{CUSTOMER}>", reply_address(delivered), "Re: livrée", "Le logo est un peu petit."))
    shop.wait_idle()
    comment = shop.show(number)["comments"][-1]
    assert (comment["visibility"], comment["text"]) == ("private", "Le logo est un peu petit.")
    [choices] = [m for m in shop.mails_to(CUSTOMER) if "à vous de décider" in str(m["Subject"])]
    assert page_link(shop, choices) == page_link(shop, delivered)
    assert "demander une révision" in body_text(choices)
    answer(shop, notice, "Une réponse publique, plus tard ?")
    assert shop.show(number)["status"] == "delivered"
    move_clock(shop, 8 * 24 * HOUR)
    until(lambda: shop.show(number)["status"] == "completed")
    answer(shop, notice, "Merci encore !")
    assert shop.show(number)["comments"][-1]["visibility"] == "public", "the habit was not changed by a held reply"


@pytest.fixture
def prepaid_shop(tmp_path: Path) -> Iterator[Gateway]:
    running = start_market(tmp_path / "home",
                           orders_mailbox="prepayment_reminder_days = 7\nprepayment_cancel_days = 14",
                           sections='[payments]\nbank_details = "IBAN FR76 3000 6000 0112 3456 7890 189"\n')
    yield running
    if running.process is not None:
        assert running.stop() == 0


def test_prepayment_reminded_then_cancelled_and_a_statement_import_in_between_stops_it(prepaid_shop: Gateway) -> None:
    shop = prepaid_shop
    paid_later, unpaid, trusted = new_order(shop, "transfer"), new_order(shop, "transfer"), new_order(shop, "transfer")
    notices = shop.mails_to(ALICE)
    for notice in notices:
        answer(shop, notice, "#confirm")
    answer(shop, notices[1], "#ship COLIS-1")
    assert shop.show(unpaid)["status"] == "confirmed", "#ship waits for the transfer"
    [error] = [m for m in shop.mails_to(ALICE) if "#ship" in body_text(m) and "force" in body_text(m)]
    answer(shop, notices[2], "#ship force COLIS-3")
    assert (shop.show(trusted)["status"], order(shop, trusted)["payment_status"]) == ("shipped", "unpaid")
    assert any("COLIS-3" in body_text(m) for m in shop.mails_to(CUSTOMER)), "the customer has the tracking"
    move_clock(shop, 7 * 24 * HOUR + 60)
    until(lambda: len([m for m in shop.mails_to(CUSTOMER) if "virement" in str(m["Subject"])]) == 3)
    reminder = [m for m in shop.mails_to(CUSTOMER) if "virement" in str(m["Subject"])][0]
    assert "IBAN FR76 3000 6000 0112 3456 7890 189" in body_text(reminder)
    assert f"#{paid_later}" in body_text(reminder) and "/order/" in body_text(reminder)
    statement = shop.home / "statement.csv"
    statement.write_text(f"date,amount,currency,reference,entry_id\n2026-12-20,120.00,EUR,VIR CMD #{paid_later},"
                         "BQ-1\n2026-12-20,5.00,EUR,Divers,BQ-2\n")
    printed = shop.cli("payments", "import", str(statement)).stdout
    assert f"matched   line 2: 120.00 EUR 'VIR CMD #{paid_later}' -> order #{paid_later}: recorded" in printed
    assert "unmatched line 3" in printed and "1 payments recorded" in printed
    assert "already recorded" in shop.cli("payments", "import", str(statement)).stdout, "once"
    assert order(shop, paid_later)["payment_status"] == "paid"
    move_clock(shop, 14 * 24 * HOUR + 120)
    until(lambda: shop.show(unpaid)["status"] == "cancelled")
    assert shop.show(paid_later)["status"] == "confirmed"
    assert shop.show(trusted)["status"] == "shipped", "goods shipped on trust are reminded, never cancelled"
    assert {d["kind"]: d["state"] for d in order(shop, paid_later)["deadlines"]}["prepayment-cancel"] == "void"
    assert any("not paid within 14 days" in body_text(m) for m in shop.mails_to(CUSTOMER))
    answer(shop, notices[0], "#ship COLIS-2")
    assert shop.show(paid_later)["status"] == "shipped"


PLANS = """[payments]
provider = "fake-card"

[[plans]]
name = "pro-monthly"
amount = "29.00"
currency = "EUR"
interval = "month"

[[plans]]
name = "pro-yearly"
amount = "290.00"
currency = "EUR"
interval = "year"

[subscriptions]
retry_days = [1, 3]
"""


def subscriptions(gw: Gateway) -> list[dict[str, object]]:
    return list(json.loads(gw.cli("subscriptions", "list", "--json").stdout))


def subscription(gw: Gateway, number: int) -> dict[str, object]:
    return dict(json.loads(gw.cli("subscriptions", "show", str(number), "--json").stdout))


def test_a_subscription_through_renewals_a_decline_retries_recovery_a_plan_change_and_termination(
        tmp_path: Path) -> None:
    gw = start_market(tmp_path / "home", orders_mailbox="", sections=PLANS)
    try:
        path = gw.home / "order.json"
        path.write_text(json.dumps({"customer": {"email": CUSTOMER, "name": "Jean", "locale": "fr"},
                                    "subject": "Abonnement pro", "payment_method": "card",
                                    "items": [{"description": "Pro", "quantity": 1, "unit_price": "29.00"}]}))
        number = int(gw.cli("orders", "create", str(path)).stdout.split("#")[1].split()[0])
        gw.cli("people", "set", CUSTOMER, "--card", "tok_visa")
        [notice] = gw.mails_to(ALICE)
        answer(gw, notice, "#plan pro-monthly")  # by mail, before the confirmation (or "plan" in the order)
        assert subscriptions(gw) == []
        answer(gw, notice, "#confirm")
        [listed] = subscriptions(gw)
        assert (listed["plan"], listed["status"], listed["order"]) == ("pro-monthly", "active", number)
        assert order(gw, number)["subscription"] == listed["id"]

        def statuses() -> list[str]:
            return [str(p["status"]) for p in subscription(gw, 1)["payments"]]  # type: ignore[union-attr]

        assert statuses() == ["succeeded"], "charged once at #confirm"
        move_clock(gw, 32 * DAY)
        until(lambda: statuses() == ["succeeded", "succeeded"])
        gw.cli("people", "set", CUSTOMER, "--card", "tok_chargeDeclined")
        move_clock(gw, 63 * DAY)
        until(lambda: subscription(gw, 1)["status"] == "payment-failed")
        move_clock(gw, 64 * DAY + HOUR)
        until(lambda: statuses() == ["succeeded", "succeeded", "declined", "declined"])
        assert subscription(gw, 1)["status"] == "payment-failed", "one retry left"
        gw.cli("people", "set", CUSTOMER, "--card", "tok_visa")
        move_clock(gw, 66 * DAY + HOUR)
        until(lambda: subscription(gw, 1)["status"] == "active")
        gw.wait_idle()
        assert any("de nouveau actif" in body_text(m) for m in gw.mails_to(CUSTOMER)), "recovered: the customer told"
        answer(gw, notice, "#plan pro-yearly")
        assert subscription(gw, 1)["next_plan"] == "pro-yearly"
        move_clock(gw, 95 * DAY)
        until(lambda: subscription(gw, 1)["plan"] == "pro-yearly")
        amounts = [p["amount"] for p in subscription(gw, 1)["payments"]]  # type: ignore[union-attr]
        assert amounts == ["29.00", "29.00", "29.00", "29.00", "29.00", "290.00"]
        answer(gw, notice, "#terminate")
        shown = subscription(gw, 1)
        assert (shown["status"], shown["next_charge_at"]) == ("active", None), "active to the end of the period"
        move_clock(gw, 95 * DAY + 366 * DAY)
        until(lambda: subscription(gw, 1)["status"] == "inactive")
        assert subscription(gw, 1)["reason"] == "terminated"
        assert len(subscription(gw, 1)["payments"]) == 6, "nothing charged after the end"  # type: ignore[arg-type]
        assert "inactive" in gw.cli("subscriptions", "list").stdout
    finally:
        assert gw.stop() == 0
