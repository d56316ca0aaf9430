"""A customer's own page (issue 19): the link at the foot of every mail they get opens a read-only list
of their own requests and orders, nobody else's; a forged link is 404, and a new key revokes the old."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Gateway, body_text, mail, reply_address, write_home

JEAN = "jean@client.example"
MARIE = "marie@client.example"
ALICE = "alice@shop.example"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = Gateway(write_home(tmp_path / "home"))
    running.env["GATEWAY_BASE_URL"] = f"http://127.0.0.1:{running.http_port}"
    running.start()
    running.add_person(ALICE, "coordinator", "en")
    yield running
    if running.process is not None:
        assert running.stop() == 0


def my_page(message: object) -> str:
    found = re.search(r"Toutes vos demandes : (http://\S+/me/[A-Za-z0-9_-]+)", body_text(message))  # type: ignore[arg-type]
    assert found, body_text(message)  # type: ignore[arg-type]
    return found.group(1)


def test_the_link_in_every_mail_opens_the_customers_own_requests_and_no_one_elses(shop: Gateway) -> None:
    shop.send(mail(f"Jean <{JEAN}>", "support@shop.example", "Colis abîmé", "Mon colis est abîmé."))
    shop.send(mail(f"Jean <{JEAN}>", "orders@shop.example", "Devis logo", "Combien pour un logo ?"))
    shop.send(mail(f"Marie <{MARIE}>", "support@shop.example", "Facture Marie", "Ma facture ?"))
    shop.wait_idle()
    acknowledgments = shop.mails_to(JEAN)
    assert len(acknowledgments) == 2 and len({my_page(m) for m in acknowledgments}) == 1, "one page per customer"
    link = my_page(acknowledgments[0])
    notice = next(m for m in shop.mails_to(ALICE) if "Colis" in str(m["Subject"]))
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Colis", "#private\nNote interne secrète."))
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Colis", "#public\nNous renvoyons le colis."))
    shop.wait_idle()
    page = httpx.get(link, timeout=30)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Colis abîmé" in page.text and "Devis logo" in page.text
    assert "Facture Marie" not in page.text, "nobody else's requests"
    assert "Nous renvoyons le colis." in page.text and "secrète" not in page.text, "only what the customer was sent"
    assert "/order/" in page.text, "the order's own page"
    assert "En cours" in page.text and "in-progress" not in page.text, "statuses in the customer's words"
    order_notice = next(m for m in shop.mails_to(ALICE) if "logo" in str(m["Subject"]).lower())
    for amount in ("450", "500"):
        shop.send(mail(f"Alice <{ALICE}>", reply_address(order_notice), "Re: Devis", f"#quote {amount}"))
        shop.wait_idle()
    page = httpx.get(link, timeout=30)
    assert re.search(r"Devis v2 · 500,00\xa0€ · à décider · <a class=\"button\" href=\"http://\S+/quote/", page.text)
    assert "Devis v1 · 450,00\xa0€ · remplacé</p>" in page.text, "a replaced quote is listed, not linked"
    forged = link[:-3] + ("abc" if not link.endswith("abc") else "xyz")
    assert httpx.get(forged, timeout=30).status_code == 404
    shop.cli("people", "set", JEAN, "--new-page-link")
    assert httpx.get(link, timeout=30).status_code == 404, "a new key revokes the links mailed before"
    shop.send(mail(f"Jean <{JEAN}>", "support@shop.example", "Autre question", "Encore une question."))
    shop.wait_idle()
    fresh = my_page(shop.mails_to(JEAN)[-1])
    assert fresh != link and httpx.get(fresh, timeout=30).status_code == 200
