"""Orders end to end over SMTP: mail and the CLI open orders, coordinators steer them with #commands."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pypdf
import pytest
from conftest import Gateway, body_text, mail, reply_address, write_home

CUSTOMER = "jean.dupont@client.example"
ALICE = "alice@shop.example"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    """A running gateway whose cards are charged by the deterministic fake-card provider."""
    running = Gateway(write_home(tmp_path / "home", extra='site_address = "3 place du Marché\\n69001 Lyon"',
                                 sections='[payments]\nprovider = "fake-card"\n')).start()
    running.add_person(ALICE, "coordinator", "en")
    yield running
    if running.process is not None:
        assert running.stop() == 0


def answer(gw: Gateway, to_alert: object, text: str) -> None:
    """Alice replies to one of her notifications, commands at the top."""
    gw.send(mail(f"Alice <{ALICE}>", reply_address(to_alert), "Re: order", text))  # type: ignore[arg-type]
    gw.wait_idle()


def order_file(gw: Gateway, unit_price: str, method: str = "card", email: str = CUSTOMER) -> Path:
    path = gw.home / f"order-{unit_price}-{email}.json"
    path.write_text(json.dumps({"customer": {"email": email, "name": "Jean Dupont", "locale": "fr"},
                                "subject": "Audit SEO", "payment_method": method,
                                "shipping_address": "12 rue des Lilas\n75011 Paris",
                                "items": [{"description": "Audit SEO", "quantity": 1, "unit_price": unit_price}]}))
    return path


def quotes_to(gw: Gateway, address: str) -> list[EmailMessage]:
    """The quote mails among the customer's."""
    return [m for m in gw.mails_to(address) if "Votre devis" in str(m["Subject"])]


def status(gw: Gateway, number: int) -> str:
    return str(gw.show(number)["status"])


def test_a_mailed_order_gets_a_quote_a_replacement_and_a_withdrawal(shop: Gateway) -> None:
    shop.send(mail(f"Jean Dupont <{CUSTOMER}>", "orders@shop.example", "Devis site vitrine",
                   "Bonjour, combien pour un site vitrine de 5 pages ?"))
    shop.wait_idle()
    [alert] = shop.mails_to(ALICE)
    assert shop.show(1)["kind"] == "order" and status(shop, 1) == "pending"
    [acknowledgment] = shop.mails_to(CUSTOMER)
    assert "http://127.0.0.1:8000/order/" in body_text(acknowledgment), "the order page, from the first mail"

    answer(shop, alert, "#quote 450")
    [quote_mail] = quotes_to(shop, CUSTOMER)
    assert "450,00\xa0€" in str(quote_mail["Subject"]), "money as the French customer writes it"
    first_link = re.search(r"http://127\.0\.0\.1:8000/quote/([A-Za-z0-9_-]+)", body_text(quote_mail))
    assert first_link is not None
    order_page = re.search(r"http://127\.0\.0\.1:8000(/order/\S+)", body_text(acknowledgment))
    assert order_page is not None
    page = httpx.get(f"http://127.0.0.1:{shop.http_port}{order_page.group(1)}", timeout=30).text
    assert f'class="button" href="http://127.0.0.1:8000/quote/{first_link.group(1)}"' in page, \
        "the order page leads to the quote it waits on"
    assert "0,00" not in page, "no total of nothing while the price is the quote's"
    assert status(shop, 1) == "in-progress"
    assert "awaiting response" in shop.show(1)["labels"]

    before = len(shop.mails_to(CUSTOMER))
    answer(shop, alert, "#quote\n2 x Page supplémentaire 150\n1 x Logo 120")
    assert len(shop.mails_to(CUSTOMER)) == before + 1, "the item lines are the quote, not a comment too"
    assert len(shop.show(1)["comments"]) == 1
    second = quotes_to(shop, CUSTOMER)[-1]
    assert "420,00" in str(second["Subject"]) and "Page supplémentaire" in body_text(second)
    assert shop.count("SELECT count(*) FROM quotes WHERE status = 'replaced'") == 1
    assert shop.count("SELECT count(*) FROM quotes WHERE status = 'open'") == 1

    before = len(shop.mails_to(CUSTOMER))
    answer(shop, alert, "#quote\n1 x Canapé d'angle 1 500 €")
    assert "Put a colon before the price" in body_text(shop.mails_to(ALICE)[-1]), "a price that reads two ways"
    assert len(shop.mails_to(CUSTOMER)) == before, "no quote with a total the coordinator did not mean"

    answer(shop, alert, "#withdraw")
    assert "retiré" in str(shop.mails_to(CUSTOMER)[-1]["Subject"])
    assert shop.count("SELECT count(*) FROM quotes WHERE status = 'withdrawn' AND version = 2") == 1
    assert "awaiting response" not in shop.show(1)["labels"]

    before = len(shop.mails_to(CUSTOMER))
    answer(shop, alert, "#quote\nBonjour Jean, le logo seul :\n1 x Logo 120\nLivraison offerte.")
    assert len(shop.mails_to(CUSTOMER)) == before + 2, "the quote, and the coordinator's words around its lines"
    assert shop.show(1)["comments"][-1]["text"] == "Bonjour Jean, le logo seul :\nLivraison offerte."
    assert "120,00" in str(quotes_to(shop, CUSTOMER)[-1]["Subject"])


def test_a_declined_card_leaves_the_order_unconfirmed_then_it_is_paid_shipped_and_completed(shop: Gateway) -> None:
    created = shop.cli("orders", "create", str(order_file(shop, "450.13")))
    assert created.stdout.startswith("order #1 created")
    [received] = shop.mails_to(CUSTOMER)
    assert "n°1" in str(received["Subject"]) and "450,13\xa0€" in body_text(received)
    [notice] = shop.mails_to(ALICE)

    answer(shop, notice, "#confirm")
    assert status(shop, 1) == "pending", "a declined card does not confirm the order"
    assert shop.count("SELECT count(*) FROM payments WHERE status = 'declined' AND provider = 'fake-card'") == 1
    told = shop.mails_to(ALICE)[-1]
    assert "Payment declined" in str(told["Subject"]) and "450.13" in body_text(told)
    assert len(shop.mails_to(CUSTOMER)) == 1, "the customer hears nothing of the decline"

    answer(shop, notice, "#payment transfer\n#confirm")
    assert status(shop, 1) == "confirmed"
    assert "confirmée" in str(shop.mails_to(CUSTOMER)[-1]["Subject"])

    mails_before = len(shop.mails_to(ALICE))
    answer(shop, notice, "#complete")
    error = shop.mails_to(ALICE)[mails_before]
    assert "#complete" in body_text(error) and "not paid" in body_text(error)
    assert status(shop, 1) == "confirmed", "a refused command applies nothing"

    assert shop.show(1)["order"]["shipping_address"] == "12 rue des Lilas\n75011 Paris", "from the shop's order"
    answer(shop, notice, "#paid 1 500")
    assert "Write the amount without spaces (1500)" in body_text(shop.mails_to(ALICE)[-1]), "1,500, or 1 ref. 500?"
    assert shop.count("SELECT count(*) FROM payments WHERE status = 'succeeded'") == 0
    answer(shop, notice, "#paid 450.13 VIR-42\n#address Bâtiment B / 5 avenue Foch / 69006 Lyon\n#ship COLIS42")
    assert status(shop, 1) == "shipped"
    shipped = shop.mails_to(CUSTOMER)[-1]
    assert "COLIS42" in body_text(shipped)
    assert "Livraison à : Bâtiment B, 5 avenue Foch, 69006 Lyon\r\nLe bon de livraison est joint à ce mail." in \
        body_text(shipped), "where it goes, and what the attachment is"
    link = re.search(r"http://127\.0\.0\.1:8000(/order/\S+)", body_text(shipped))
    assert link is not None
    page = httpx.get(f"http://127.0.0.1:{shop.http_port}{link.group(1)}", timeout=30).text
    assert "Numéro de suivi : COLIS42" in page and "Livraison à : Bâtiment B, 5 avenue Foch, 69006 Lyon" in page
    [note] = list(shipped.iter_attachments())
    assert (note.get_filename(), note.get_content_type()) == ("bon-de-livraison-1.pdf", "application/pdf")
    text = pypdf.PdfReader(io.BytesIO(note.get_content())).pages[0].extract_text()
    assert "Bon de livraison" in text and "Commande n°1" in text and "1 Audit SEO" in text and "COLIS42" in text
    assert "Boutique Test\n3 place du Marché\n69001 Lyon" in text, "the site's address (site_address)"
    assert "Jean Dupont\nBâtiment B\n5 avenue Foch\n69006 Lyon" in text, "where #address sends it"
    assert "rue des Lilas" not in text, "#address replaced the shop's address"
    assert shop.count("SELECT count(*) FROM orders WHERE payment_status = 'paid'") == 1
    answer(shop, notice, "#complete")
    assert status(shop, 1) == "completed"


def test_confirming_a_card_order_charges_it(shop: Gateway) -> None:
    shop.cli("orders", "create", str(order_file(shop, "450.00")))
    answer(shop, shop.mails_to(ALICE)[0], "#confirm")
    assert status(shop, 1) == "confirmed"
    assert shop.count("SELECT count(*) FROM payments WHERE status = 'succeeded' AND amount = 450") == 1
    assert "débité" in body_text(shop.mails_to(CUSTOMER)[-1])


def test_order_commands_on_a_helpdesk_request_are_refused(shop: Gateway) -> None:
    shop.send(mail(CUSTOMER, "support@shop.example", "Question", "Une question."))
    shop.wait_idle()
    answer(shop, shop.mails_to(ALICE)[0], "#confirm")
    error = shop.mails_to(ALICE)[-1]
    assert "#confirm" in body_text(error) and "applies to orders" in body_text(error)
    assert status(shop, 1) == "new"


def test_invoice_payment_needs_the_customer_enabled_and_orders_ship_in_bulk(shop: Gateway) -> None:
    for email in (CUSTOMER, "marie@client.example"):
        shop.cli("orders", "create", str(order_file(shop, "80", method="transfer", email=email)))
    notice = shop.mails_to(ALICE)[0]
    answer(shop, notice, "#payment invoice")
    assert "--invoice yes" in body_text(shop.mails_to(ALICE)[-1])
    shop.cli("people", "set", CUSTOMER, "--invoice", "yes")
    answer(shop, notice, "#payment invoice\n#confirm")
    answer(shop, shop.mails_to(ALICE)[1], "#confirm")
    shipped = shop.cli("orders", "ship", "1", "2", "--tracking", "LOT-7")
    assert shipped.stdout.splitlines() == ["order #1 shipped (tracking LOT-7)", "order #2 shipped (tracking LOT-7)"]
    assert [status(shop, n) for n in (1, 2)] == ["shipped", "shipped"]
    assert "LOT-7" in body_text(shop.mails_to("marie@client.example")[-1])
    refused = shop.cli("orders", "ship", "1", "9", check=False)
    assert refused.returncode == 1 and "no order #9" in refused.stderr
    stats = json.loads(shop.cli("stats", "--json").stdout)
    assert stats["by_status"] == {"shipped": 2} and stats["revenue_confirmed"] == {"EUR": "160.00"}


def test_an_order_file_with_errors_is_refused_with_one_line_and_stores_nothing(shop: Gateway) -> None:
    bad = shop.home / "bad.json"
    bad.write_text(json.dumps({"customer": {"email": "nobody"}, "items": [{"quantity": 1, "unit_price": "nine"}]}))
    result = shop.cli("orders", "create", str(bad), check=False)
    assert result.returncode == 1
    assert "customer.email" in result.stderr and "items[0].unit_price" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert shop.count("SELECT count(*) FROM requests") == 0


def test_notices_teach_the_commands_of_the_stage_and_help_answers_with_the_whole_table(shop: Gateway) -> None:
    shop.add_person("bob@shop.example", "coordinator", "en")
    shop.send(mail(f"Jean Dupont <{CUSTOMER}>", "orders@shop.example", "Devis site vitrine",
                   "Bonjour, combien pour un site vitrine ?"))
    shop.wait_idle()
    [notice] = shop.mails_to(ALICE)
    text = body_text(notice)
    assert str(notice["Subject"]).endswith("New order #1: Devis site vitrine"), "an order by mail: the order notice"
    assert "Bonjour, combien pour un site vitrine ?" in text
    assert "Commands at the top of a reply: #quote AMOUNT [CURRENCY], #confirm, #decline REASON" in text
    shop.cli("orders", "create", str(order_file(shop, "450.00")))
    [placed] = [m for m in shop.mails_to(ALICE) if "New order #2" in str(m["Subject"])]
    answer(shop, placed, "#confirm\nC'est parti.")
    assert status(shop, 2) == "confirmed"
    [told] = [m for m in shop.mails_to("bob@shop.example") if "C'est parti." in body_text(m)]
    assert "Commands at the top of a reply: #ship [TRACKING], #deliver, #paid AMOUNT [REFERENCE]" in \
        body_text(told), "a confirmed order: what comes next"
    answer(shop, notice, "#help")
    [table] = [m for m in shop.mails_to(ALICE) if "Commands by mail" in str(m["Subject"])]
    assert "#cancel REASON" in body_text(table) and "cancels and refunds" in body_text(table)
    assert "#help" in body_text(table) and "(your role: coordinator)" in body_text(table)
    assert shop.show(1)["comments"][-1]["text"] != "#help", "no comment from a mail of commands alone"


def test_the_order_card_is_kept_by_mail_manager_tags_internal_comment_and_a_payments_comment(shop: Gateway) -> None:
    shop.add_person("bob@shop.example", "coordinator", "en")
    shop.cli("orders", "create", str(order_file(shop, "450.00", method="transfer")))
    [notice] = shop.mails_to(ALICE)
    answer(shop, notice, "#manager bob@shop.example\n#tag vip\n#tag urgent\n#untag urgent\n"
                         "#comment Client historique, livrer en main propre\n"
                         "#paid 200 VIR-77 -- acompte reçu par virement")
    shown = shop.show(1)
    card = shown["order"]
    assert (card["manager"], card["tags"], card["internal_comment"]) == (
        "bob@shop.example", ["vip"], "Client historique, livrer en main propre")
    last = shown["payments"][-1]
    assert (last["amount"], last["comment"]) == ("200.00", "acompte reçu par virement")
    assert all("historique" not in body_text(m) for m in shop.mails_to(CUSTOMER)), "the internal comment stays inside"
    answer(shop, notice, "#manager carol@client.example")
    assert shop.show(1)["order"]["manager"] == "bob@shop.example", "only a coordinator manages an order"
    answer(shop, notice, "#show")
    [card] = [m for m in shop.mails_to(ALICE) if "Card of request #1" in str(m["Subject"])]
    text = body_text(card)
    for shown in ("Tags: vip", "Manager: bob@shop.example", "Internal comment: Client historique",
                  "€200.00 transfer", "acompte reçu par virement", "Order page: http",
                  "Deliver to: 12 rue des Lilas / 75011 Paris"):
        assert shown in text, shown


def test_the_customer_is_told_when_the_order_is_being_processed_and_when_it_is_completed(shop: Gateway) -> None:
    shop.cli("orders", "create", str(order_file(shop, "80.00", method="cash")))
    [notice] = shop.mails_to(ALICE)
    before = len(shop.mails_to(CUSTOMER))
    answer(shop, notice, "#status in-progress")
    assert status(shop, 1) == "in-progress"
    [processing] = shop.mails_to(CUSTOMER)[before:]
    assert "en cours de traitement" in str(processing["Subject"]) and "/order/" in body_text(processing)
    answer(shop, notice, "#status in-progress")
    assert len(shop.mails_to(CUSTOMER)) == before + 1, "told once"
    answer(shop, notice, "#confirm")
    answer(shop, notice, "#complete force")
    assert status(shop, 1) == "completed"
    [completed] = [m for m in shop.mails_to(CUSTOMER) if "terminée" in str(m["Subject"])]
    assert "est terminée. Merci" in body_text(completed), "completed by the team: no word of a missing review"
