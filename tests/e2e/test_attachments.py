"""A comment's files travel with it to whoever may see it (issue 19): attached up to the cap, past it a
signed download link that works, expires, and is refused once forged."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from conftest import Gateway, body_text, mail, reply_address, write_home

CUSTOMER = "jean@client.example"
ALICE = "alice@shop.example"
BOB = "bob@shop.example"
PHOTO = bytes(range(256)) * 12  # 3 KB
INVOICE = b"%PDF-1.4 invoice " * 600  # 10 KB: past the cap below


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Gateway]:
    running = Gateway(write_home(tmp_path / "home", extra='attachments_max_mb = 0.005\nclock_file = "clock"'))
    running.env["GATEWAY_BASE_URL"] = f"http://127.0.0.1:{running.http_port}"
    running.start()
    running.add_person(ALICE, "coordinator", "en")
    running.add_person(BOB, "coordinator", "en")
    yield running
    if running.process is not None:
        assert running.stop() == 0


def files_of(message: EmailMessage) -> dict[str, bytes]:
    return {str(part.get_filename()): part.get_content() for part in message.iter_attachments()}


def test_files_go_with_their_comment_to_who_may_see_it_and_never_further(shop: Gateway) -> None:
    opening = mail(f"Jean <{CUSTOMER}>", "support@shop.example", "Colis abîmé", "Voici une photo du colis.")
    opening.add_attachment(PHOTO, maintype="image", subtype="jpeg", filename="colis abîmé.jpg")
    shop.send(opening)
    shop.wait_idle()
    [to_alice] = shop.mails_to(ALICE)
    assert files_of(to_alice) == {"colis abîmé.jpg": PHOTO}, "the customer's photo reaches the team"
    private = mail(f"Alice <{ALICE}>", reply_address(to_alice), "Re: Colis", "#private\nLe bon du transporteur.")
    private.add_attachment(b"bon de transport", maintype="application", subtype="octet-stream", filename="bon.txt")
    shop.send(private)
    shop.wait_idle()
    assert [files_of(m) for m in shop.mails_to(BOB) if "transporteur" in body_text(m)] == [
        {"bon.txt": b"bon de transport"}]
    assert all("bon.txt" not in files_of(m) for m in shop.mails_to(CUSTOMER)), "a private file stays with the team"
    public = mail(f"Alice <{ALICE}>", reply_address(to_alice), "Re: Colis", "#public\nVoici le bon d'échange.")
    public.add_attachment(b"bon d'echange", maintype="text", subtype="plain", filename="echange.txt")
    shop.send(public)
    shop.wait_idle()
    [answer] = [m for m in shop.mails_to(CUSTOMER) if "bon d'échange" in body_text(m)]
    assert files_of(answer) == {"echange.txt": b"bon d'echange"}


def test_past_the_cap_a_mail_carries_a_link_that_works_expires_and_refuses_a_forgery(shop: Gateway) -> None:
    opening = mail(f"Jean <{CUSTOMER}>", "support@shop.example", "Facture", "La facture, en pièce jointe.")
    opening.add_attachment(INVOICE, maintype="application", subtype="pdf", filename="facture mars.pdf")
    shop.send(opening)
    shop.wait_idle()
    [to_alice] = shop.mails_to(ALICE)
    assert files_of(to_alice) == {}, "too large to attach"
    text = body_text(to_alice)
    assert "Files too large to attach" in text and "facture mars.pdf (10\xa0KB)" in text
    link = re.search(r"http://127\.0\.0\.1:\d+/files/[A-Za-z0-9_-]+", text)
    assert link, text
    got = httpx.get(link.group(0), timeout=30)
    assert got.status_code == 200 and got.content == INVOICE
    assert got.headers["content-disposition"] == "attachment; filename*=UTF-8''facture%20mars.pdf"
    assert got.headers["x-content-type-options"] == "nosniff" and got.headers["cache-control"] == "no-store"
    forged = link.group(0)[:-2] + ("AA" if not link.group(0).endswith("AA") else "BB")
    assert httpx.get(forged, timeout=30).status_code == 404
    assert httpx.get(f"http://127.0.0.1:{shop.http_port}/files/", timeout=30).status_code == 404, "no listing"
    (shop.home / "clock").write_text(str(31 * 24 * 3600))
    assert httpx.get(link.group(0), timeout=30).status_code == 410, "30 days on, the link has expired"
