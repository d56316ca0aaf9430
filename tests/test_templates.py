"""Every built-in mail, rendered in both languages: money and dates as the reader writes them, nothing
left unrendered, HTML that parses, links that work from a mail client; and a home's own template wins."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.orders.customer_page import CustomerView, Line, QuoteLine
from gateway.outbound.render import DEFAULTS, render_mail
from gateway.settings import Settings
from gateway.web.pages import render_page

REPOSITORY = Path(__file__).resolve().parent.parent
MAILS = sorted({p.name.rsplit(".", 2)[0] for p in (DEFAULTS / "mail" / "en").glob("*.j2")})


LIST_ROW = {"number": 12, "subject": "Logo", "status": "in-progress", "requester": "jean@client.example",
            "assignee": None, "expected": "customer", "waiting_on_you": False, "age_days": 1200, "age_hours": 3}


def mail_context() -> dict[str, object]:
    """One context with every variable any mail template reads, amounts and times as the code gives them."""
    customer = SimpleNamespace(email="jean@client.example")
    order = SimpleNamespace(customer=customer, number=12)
    item = {"description": "Logo", "offer": "", "quantity": 2, "unit_price": "750.00", "amount": "1500.00"}
    return {
        "accepted": True, "added_by": "alice@shop.example", "address": "jean@client.example",
        "amount": "1500.00", "amount_due": "1500.00", "amount_paid": "0.00",
        "bank_details": "IBAN FR76 3000 6000 0112 3456 7890 189",
        "bad": [SimpleNamespace(line="#frobnicate", reason="unknown command")], "by": "alice@shop.example",
        "by_customer": False, "silent": True,
        "by_hand": [{"amount": Decimal("20"), "currency": "EUR", "method": "transfer"}],
        "change": "renewed", "charged": False, "commands": "Commands at the top of a reply: #ship [TRACKING]",
        "comment": SimpleNamespace(text="Le colis est arrivé abîmé.", author_email="jean@client.example",
                                   visibility="public", unverified_sender=False, author_role="requester"),
        "currency": "EUR", "defects": [], "discount": "50.00", "delivery_note": True, "received": "200.00",
        "shipping_address": "12 rue des Lilas\n75011 Paris",
        "diagnostic": "550 5.1.1 user unknown", "due_at": datetime(2027, 1, 5, 14),
        "expected": False, "files": ["logo.png"], "items": [item], "leak": "code 1234", "limit": 20,
        "link": "https://shop.example/quote/abc", "mailbox": "support@shop.example", "message": 7, "next_plan": "pro",
        "number": 12, "observers": ["marie@client.example"], "order": order, "original_attached": True, "order_link": "https://shop.example/order/abc",
        "payment": SimpleNamespace(provider="fake-card"), "payment_link": "https://pay.example/12",
        "payment_method": "transfer", "period_end": datetime(2027, 2, 1), "plan": "pro", "plan_currency": "EUR",
        "quote_currency": "EUR", "quote_items": [item], "rating": 5, "reason": "trop cher",
        "recipient": "jean@client.example", "recipient_name": "Jean", "recipient_email": "jean@client.example",
        "reference": "#12", "refunded": "1500.00", "review": "Parfait", "review_days": 7, "role": "coordinator",
        "request": SimpleNamespace(id=12, subject="Logo", status="confirmed", kind="order", assignee=None,
                                   mailbox="orders@shop.example"),
        "retry": datetime(2027, 1, 8), "rows": [LIST_ROW], "sender": "jean@client.example",
        "site_name": "Boutique Exemple",
        "base_url": "https://shop.example", "source": "mail", "starts": datetime(2027, 3, 1), "status": "",
        "subject": "Logo", "subscription": SimpleNamespace(id=3), "table_en": [("#help", "this table")],
        "table_fr": [("#help", "ce tableau")], "text": "Voici le logo.", "total": "1500.00", "tracking": "COLIS-1",
        "valid_until": datetime(2027, 1, 5), "version": 2, "my_page": "https://shop.example/me/abc",
        "labels": ["vip"], "participants": [SimpleNamespace(email="jean@client.example", role="requester")],
        "product": SimpleNamespace(sku="LOGO-1", name="Logo vectoriel"), "delivery": "LIV-9",
        "card": {"order": {"items": [item], "total": "1500.00", "amount_paid": "0.00", "payment_status": "unpaid",
                           "payment_method": "transfer", "tags": ["vip"], "manager": "alice@shop.example",
                           "internal_comment": "à livrer en main propre",
                           "shipping_address": "12 rue des Lilas\n75011 Paris",
                           "deadlines": [{"kind": "delivery", "due_at": "2027-01-05T14:00:00Z", "state": "pending"}]},
                 "payments": [{"date": "2027-01-02T10:00:00Z", "amount": "200.00", "currency": "EUR",
                               "method": "transfer", "status": "succeeded", "transaction_id": "VIR-7",
                               "comment": "acompte"},
                              {"date": "2027-01-03T10:00:00Z", "amount": "1300.00", "currency": "EUR",
                               "method": "card", "status": "declined", "transaction_id": "", "comment": ""}]},
    }


class _Tags(HTMLParser):
    """The open tags left unclosed, and every link."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name == "href"]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("mail", MAILS)
def test_every_mail_reads_well_in_both_languages(mail: str, locale: str, tmp_path: Path) -> None:
    event, audience = mail.split(".")
    rendered = render_mail(tmp_path, event, audience, locale, mail_context())
    for part in (rendered.subject, rendered.text, rendered.html):
        assert "{{" not in part and "{%" not in part and "None" not in part
        assert not re.search(r"\d\.\d\d ?(EUR|€)", part), "money is never written 1500.00 EUR"
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", part), "dates are never written 2027-01-05"
    if "1500" in rendered.text.replace("\u202f", "").replace(",", ""):
        assert ("1\u202f500,00\xa0€" if locale == "fr" else "€1,500.00") in rendered.text, "as the reader writes it"
    tags = _Tags()
    tags.feed(rendered.html)
    assert tags.open == [], "every tag closed"
    assert all(link.startswith(("https://", "http://", "mailto:")) for link in tags.links), tags.links
    assert f'lang="{locale}"' in rendered.html and "style=" in rendered.html, "the layout, its CSS inlined"


def test_a_quote_mail_shows_the_amount_the_date_and_a_button() -> None:
    rendered = render_mail(Path("/nonexistent"), "quote_sent", "customer", "fr", mail_context())
    assert rendered.subject == "Votre devis n°12-2 : 1\u202f500,00\xa0€"
    assert "valable jusqu'au 5 janvier 2027" in rendered.text
    assert re.search(r'<a class="button" href="https://shop.example/quote/abc" style="[^"]*background', rendered.html)
    assert "<table" in rendered.html and "750" not in rendered.text.split("Logo")[0]


def test_an_order_mail_shows_each_lines_amount_the_discount_and_how_to_pay_by_transfer(tmp_path: Path) -> None:
    """A new user's order: the text part gave each line's unit price where the HTML gave its amount, the
    discount appeared nowhere though the total had it, and "(transfer)" was all a customer who must pay
    by transfer was told."""
    confirmed = render_mail(tmp_path, "order_confirmed", "customer", "fr", {**mail_context(), "charged": False})
    assert "- 2 x Logo à 750,00\xa0€ : 1\u202f500,00\xa0€" in confirmed.text
    assert "Remise : −50,00\xa0€\nTotal : 1\u202f500,00\xa0€." in confirmed.text
    assert "(paiement par virement). Coordonnées bancaires : IBAN FR76" in confirmed.text
    assert "Remise : −50,00&nbsp;€<br>" in confirmed.html
    english = render_mail(tmp_path, "order_confirmed", "customer", "en", {**mail_context(), "charged": False})
    assert "- 2 x Logo at €750.00: €1,500.00" in english.text and "Discount: −€50.00" in english.text


def test_a_comment_the_customer_did_not_write_nor_the_shop_says_who_wrote_it(tmp_path: Path) -> None:
    """A colleague in Cc replied to all: the customer's mail of it read as if the shop said it."""
    colleague = SimpleNamespace(text="Accord donné.", author_email="chef@client.example", visibility="public",
                                unverified_sender=False, author_role="observer")
    told = render_mail(tmp_path, "comment", "customer", "fr", {**mail_context(), "comment": colleague})
    assert told.text.startswith("chef@client.example a écrit :\n\nAccord donné.")
    own = render_mail(tmp_path, "comment", "customer", "fr", mail_context())
    assert own.text.startswith("Le colis est arrivé abîmé."), "her own words, or the shop's, as they are"


def test_a_receipt_for_an_order_not_priced_yet_is_a_deposit_not_paid_in_full(tmp_path: Path) -> None:
    """A deposit on an order waiting for its quote: its amount due is 0, and the receipt said "paid in full"."""
    deposit = render_mail(tmp_path, "payment_received", "customer", "fr",
                          {**mail_context(), "total": "0.00", "amount_due": "0.00"})
    assert "comme acompte" in deposit.text and "entièrement payée" not in deposit.text
    assert "comme acompte" in deposit.html
    paid = render_mail(tmp_path, "payment_received", "customer", "fr", {**mail_context(), "amount_due": "0.00"})
    assert "entièrement payée" in paid.text


def test_the_inbox_and_the_card_by_mail_speak_the_readers_words(tmp_path: Path) -> None:
    """#list and #show: states, roles and numbers as the reader writes them (English keeps the codes,
    the words its commands take)."""
    french = render_mail(tmp_path, "list", "coordinator", "fr", mail_context())
    assert "#12  en cours  tous  attend : client  1\u202f200 j 3 h" in french.text
    assert "en cours · tous · attend : client" in french.html and "in-progress" not in french.html
    english = render_mail(tmp_path, "list", "coordinator", "en", mail_context())
    assert "#12  in-progress  everyone  waiting on: customer  1,200 d 3 h" in english.text
    two = render_mail(tmp_path, "list", "coordinator", "fr", {**mail_context(), "rows": [
        {**LIST_ROW, "waiting_on_you": True}, {**LIST_ROW, "number": 13}]})
    assert two.text.startswith("2 demandes ouvertes, ") and "(de jean@client.example)\n  #13  " in two.text, \
        "one request a line, however its requester line ends"
    card = render_mail(tmp_path, "card", "sender", "fr", mail_context())
    assert "État : confirmée" in card.text and "(non payée, paiement par virement)" in card.text
    assert "virement réussi VIR-7" in card.text and "carte refusé\n" in card.text, "a payment's words"


def test_a_homes_own_template_wins_over_the_built_in_one(tmp_path: Path) -> None:
    ours = render_mail(REPOSITORY, "acknowledgment", "customer", "fr", mail_context())
    built_in = render_mail(tmp_path, "acknowledgment", "customer", "fr", mail_context())
    assert "du lundi au vendredi" in ours.text and "du lundi au vendredi" not in built_in.text
    assert "Nous avons bien reçu votre commande n°12" in built_in.text
    english = render_mail(REPOSITORY, "acknowledgment", "customer", "en", mail_context())
    assert "du lundi au vendredi" not in english.text, "the override is for one language only"


def test_the_templates_readme_names_every_built_in_mail() -> None:
    readme = (REPOSITORY / "templates" / "README.md").read_text()
    for mail in MAILS:
        event, audience = mail.split(".")
        assert f"| `{event}` | {audience} |" in readme, mail


def test_the_templates_readme_names_every_built_in_template_file() -> None:
    """A mail's file by its language, its row and its part; the layouts, partials, pages and PDFs by path."""
    readme = (REPOSITORY / "templates" / "README.md").read_text()
    for path in sorted(DEFAULTS.rglob("*.j2")):
        name = path.relative_to(DEFAULTS).as_posix()
        if re.fullmatch(r"mail/[a-z]{2}/[^/]+", name):
            locale = path.parent.name
            event, audience, part, _j2 = path.name.split(".")
            assert f"`{locale}`" in readme and f"| `{event}` | {audience} |" in readme and f"`{part}`" in readme, name
        else:
            assert f"`{name}`" in readme, name


# What orders.mail.tell_customer sends, and the two mails of any request, about an order when it is one.
ORDER_MAILS = sorted({"acknowledgment", "comment", *re.findall(r'tell_customer\([^,]+, [^,]+, "([a-z_]+)"', "\n".join(
    path.read_text() for path in (REPOSITORY / "gateway").rglob("*.py")))})


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("event", ORDER_MAILS)
def test_every_mail_to_a_customer_about_an_order_carries_the_order_page_link(event: str, locale: str) -> None:
    """CONTRACT §10: the order page's link in every mail to a customer about an order."""
    assert len(ORDER_MAILS) > 10
    rendered = render_mail(Path("/nonexistent"), event, "customer", locale, mail_context())
    assert "https://shop.example/order/abc" in rendered.text
    assert 'href="https://shop.example/order/abc"' in rendered.html
    if event not in ("acknowledgment", "comment"):  # a request's two mails, a helpdesk's too: a link will do
        assert re.search(r'<a class="button" href="https://shop.example/(order|quote|pay)', rendered.html) or \
            'class="button" href="https://pay.example' in rendered.html, "the one action that matters, a button"


def test_the_customer_page_says_each_state_in_words_and_one_it_has_no_words_for_as_it_is(tmp_path: Path) -> None:
    """A rule may give an order a helpdesk status (``resolved``): the page still opens, with the code."""
    settings = Settings(home=tmp_path, secret_key="test-secret")
    quote = QuoteLine(2, Decimal("500.00"), "EUR", "open", "https://shop.example/quote/abc")
    view = CustomerView("Jean", "jean@client.example", "fr", [
        Line(3, "order", "Logo", "resolved", datetime(2027, 1, 5), "", "https://shop.example/order/abc", [quote]),
        Line(2, "helpdesk", "Colis", "in-progress", datetime(2027, 1, 4), "Nous renvoyons le colis.", None, [])])
    page = render_page(settings, "mine", "fr", view=view).body.decode()
    assert "resolved · 5 janvier 2027" in page and "En cours · 4 janvier 2027" in page
    assert "Devis v2 · 500,00\xa0€ · à décider" in page
