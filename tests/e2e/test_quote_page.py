"""The quote page over real HTTP: a customer opens the link from the mail and decides, once.

Each test runs ``gateway serve`` whose ``base_url`` is its own HTTP port, so the links in
the mails are the links the test follows.
"""

from __future__ import annotations

import html
import json
import re
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from conftest import Gateway, body_text, mail, reply_address, write_home

from gateway.tokens import mint_quote_token

CUSTOMER = "jean.dupont@client.example"
ALICE = "alice@shop.example"


def start_shop(home: Path, sections: str = "") -> Gateway:
    """A gateway with the fake-card provider, whose mails link to its own HTTP port, and Alice coordinating."""
    running = Gateway(write_home(home, sections='[payments]\nprovider = "fake-card"\n' + sections))
    running.env["GATEWAY_BASE_URL"] = f"http://127.0.0.1:{running.http_port}"
    running.start()
    running.add_person(ALICE, "coordinator", "en")
    return running


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = start_shop(tmp_path / "home")
    yield running
    if running.process is not None:
        assert running.stop() == 0


@pytest.fixture
def web(shop: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{shop.http_port}", timeout=30) as client:
        yield client


def answer(gw: Gateway, alert: EmailMessage, text: str) -> None:
    """Alice replies to one of her notifications, commands at the top."""
    gw.send(mail(f"Alice <{ALICE}>", reply_address(alert), "Re: order", text))
    gw.wait_idle()


def quote_links(gw: Gateway, customer: str = CUSTOMER) -> list[str]:
    """The quote links mailed to the customer, oldest first, as paths (``/quote/TOKEN``)."""
    pattern = rf"http://127\.0\.0\.1:{gw.http_port}(/quote/[A-Za-z0-9_-]+)"
    return [m.group(1) for message in gw.mails_to(customer)
            if (m := re.search(pattern, body_text(message)))]


def order_with_quote(gw: Gateway, quote: str = "#quote 450", customer: str = CUSTOMER) -> tuple[EmailMessage, str]:
    """The customer mails the orders desk, Alice quotes: her alert and the link the customer got."""
    gw.send(mail(f"Jean Dupont <{customer}>", "orders@shop.example", "Devis site vitrine",
                 "Bonjour, combien pour un site vitrine de 5 pages ?"))
    gw.wait_idle()
    alert = gw.mails_to(ALICE)[-1]
    answer(gw, alert, quote)
    return alert, quote_links(gw, customer)[-1]


def quote_statuses(gw: Gateway, number: int = 1) -> list[str]:
    return [q["status"] for q in gw.show(number)["quotes"]]


def secret_key(gw: Gateway) -> str:
    return str(tomllib.loads(gw.config.read_text())["gateway"]["secret_key"])


def visible_text(page: str) -> str:
    """What a reader sees: no style, no tags, entities decoded."""
    return " ".join(html.unescape(re.sub(r"<style.*?</style>|<[^>]+>", " ", page, flags=re.S)).split())


def test_a_customer_accepts_a_quote_then_the_coordinator_confirms_and_the_card_is_charged(
        shop: Gateway, web: httpx.Client) -> None:
    alert, link = order_with_quote(shop)
    page = web.get(link)
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "450,00 €" in text and "Boutique Test" in text, "as a French reader writes it"
    assert "commande n°1" in text and "Valable jusqu'au" in text
    assert "Accepter le devis" in text and "Refuser le devis" in text
    assert page.headers["cache-control"] == "no-store" and "frame-ancestors 'none'" in page.headers[
        "content-security-policy"]

    def unread() -> list[int]:
        return [r["number"] for r in json.loads(shop.cli("requests", "list", "--unread", "--json").stdout)]

    assert unread() == [], "read: Alice sent the quote"
    accepted = web.post(f"{link}/accept")
    assert accepted.status_code == 303 and accepted.headers["location"] == link
    shop.wait_idle()
    assert unread() == [1], "back in the inbox, unread, after the customer's decision"
    outcome = web.get(link)
    assert outcome.status_code == 200
    assert "Devis accepté" in visible_text(outcome.text) and "/accept" not in outcome.text
    assert quote_statuses(shop) == ["accepted"]
    told = shop.mails_to(ALICE)[-1]
    assert "accepted" in str(told["Subject"]) and "450.00" in body_text(told)
    assert shop.show(1)["order"]["total"] == "450.00"

    answer(shop, alert, "#payment card\n#confirm")
    assert shop.show(1)["status"] == "confirmed"
    assert shop.count("SELECT count(*) FROM payments WHERE status = 'succeeded' AND amount = 450") == 1


def test_a_customer_declines_with_a_reason_and_the_coordinators_read_it(shop: Gateway, web: httpx.Client) -> None:
    shop.add_person("mary@client.example", "customer", "en")
    _, link = order_with_quote(shop, customer="mary@client.example")
    page = web.get(link)
    assert "Accept the quote" in page.text and "Decline the quote" in page.text and 'lang="en"' in page.text

    declined = web.post(f"{link}/decline", data={"reason": "Too expensive <b>for us</b>"})
    assert declined.status_code == 303
    shop.wait_idle()
    outcome = web.get(link)
    assert "Quote declined" in outcome.text
    assert "Too expensive &lt;b&gt;for us&lt;/b&gt;" in outcome.text, "the reason is shown, escaped"
    [quote] = shop.show(1)["quotes"]
    assert quote["status"] == "declined" and quote["reason"] == "Too expensive <b>for us</b>"
    told = shop.mails_to(ALICE)[-1]
    assert "declined" in str(told["Subject"]) and "Too expensive <b>for us</b>" in body_text(told)


def test_a_replaced_quote_answers_410_naming_its_new_version_and_a_withdrawn_one_410(
        shop: Gateway, web: httpx.Client) -> None:
    alert, first = order_with_quote(shop)
    answer(shop, alert, "#quote 500")
    second = quote_links(shop)[-1]
    assert second != first

    old = web.get(first)
    assert old.status_code == 410
    text = visible_text(old.text)
    assert "Ce devis a été remplacé" in text and "version 2" in text and "500,00 €" in text
    assert f'href="{second}"' in old.text
    assert web.post(f"{first}/accept").status_code == 410
    assert web.post(f"{first}/decline", data={"reason": "non"}).status_code == 410
    assert quote_statuses(shop) == ["replaced", "open"]
    assert web.get(second).status_code == 200

    answer(shop, alert, "#withdraw")
    withdrawn = web.get(second)
    assert withdrawn.status_code == 410 and "Ce devis a été retiré" in visible_text(withdrawn.text)
    assert web.post(f"{second}/accept").status_code == 410
    assert quote_statuses(shop) == ["replaced", "withdrawn"]


def test_an_expired_quote_answers_410_and_cannot_be_accepted(tmp_path: Path) -> None:
    shop = start_shop(tmp_path / "home", sections="[orders]\nquote_validity_days = 0\n")
    try:
        _, link = order_with_quote(shop)
        with httpx.Client(base_url=f"http://127.0.0.1:{shop.http_port}", timeout=30) as web:
            page = web.get(link)
            assert page.status_code == 410 and "Ce devis a expiré" in page.text
            assert web.post(f"{link}/accept").status_code == 410
        shop.wait_idle()
        assert quote_statuses(shop) == ["expired"]
        assert shop.show(1)["order"]["total"] != "450.00"
    finally:
        assert shop.stop() == 0


def test_forged_or_edited_links_are_refused_and_change_nothing(shop: Gateway, web: httpx.Client) -> None:
    _, link = order_with_quote(shop)
    token = link.rsplit("/", 1)[1]
    edited = token[:-1] + ("A" if token[-1] != "A" else "B")
    key = secret_key(shop)
    refused = {
        f"/quote/{edited}": 403,
        f"/quote/{token[:-3]}": 403,
        f"/quote/{token}x": 403,
        "/quote/not-a-token": 403,
        f"/quote/{mint_quote_token('another-site', 1, 1)}": 403,
        f"/quote/{mint_quote_token(key, 999, 1)}": 404,  # well signed, but no such quote
        f"/quote/{mint_quote_token(key, 1, 2)}": 404,  # quote 1 has no version 2
    }
    mails_before = len(shop.outbox())
    for path, status in refused.items():
        page = web.get(path)
        assert page.status_code == status, path
        assert ("Ce lien n'est pas valide" if status == 403 else "Devis introuvable") in visible_text(page.text)
        assert web.post(f"{path}/accept").status_code == status, path
        assert web.post(f"{path}/decline", data={"reason": "x"}).status_code == status, path
    assert "This link is not valid" in web.get("/quote/abc", headers={"Accept-Language": "en-GB,en;q=0.8"}).text
    shop.wait_idle()
    assert quote_statuses(shop) == ["open"]
    assert len(shop.outbox()) == mails_before
    assert web.get(link).status_code == 200


def test_a_mail_scanner_following_the_link_changes_nothing(shop: Gateway, web: httpx.Client) -> None:
    _, link = order_with_quote(shop)
    before = shop.show(1)
    mails_before = len(shop.outbox())
    scanners = ["Mozilla/5.0 (compatible; SafeLinks)", "Barracuda/1.0", "python-httpx", "Googlebot/2.1"]
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda n: web.get(link, headers={"User-Agent": scanners[n % 4]}), range(40)))
    assert {page.status_code for page in pages} == {200}
    assert web.head(link).status_code == 200
    assert web.get(f"{link}/accept").status_code == 405
    assert web.get(f"{link}/decline").status_code == 405
    assert web.options(link).status_code == 405
    page = pages[0].text
    assert "<script" not in page.lower() and "onload" not in page.lower(), "nothing can submit the form by itself"
    shop.wait_idle()
    after = shop.show(1)
    assert after["quotes"] == before["quotes"] and after["updated_at"] == before["updated_at"]
    assert after["events"] == before["events"] and after["labels"] == before["labels"]
    assert len(shop.outbox()) == mails_before


def test_deciding_twice_decides_once_even_when_the_posts_race(shop: Gateway, web: httpx.Client) -> None:
    _, link = order_with_quote(shop)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(
            lambda n: web.post(f"{link}/accept" if n % 2 else f"{link}/decline", data={"reason": f"r{n}"}),
            range(10)))
    assert {a.status_code for a in answers} == {303}
    shop.wait_idle()
    [quote] = shop.show(1)["quotes"]
    assert quote["status"] in ("accepted", "declined")
    told = [m for m in shop.mails_to(ALICE) if "Quote" in str(m["Subject"])]
    assert len(told) == 1, "the coordinators hear of one decision"

    again = web.post(f"{link}/decline", data={"reason": "changed my mind"})
    assert again.status_code == 303 and again.headers["location"] == link
    shop.wait_idle()
    assert shop.show(1)["quotes"] == [quote]
    expected = "Devis accepté" if quote["status"] == "accepted" else "Devis refusé"
    assert expected in web.get(link).text
