"""A coordinator forwards a customer's mail to the mailbox: the request is the customer's (issue 19).

The forwards are written the way Gmail, Outlook, Apple Mail and Thunderbird write them, inline and
as an attached message, in French and English; the forwarder's own words are a note whose commands
apply, and the customer hears nothing until someone answers publicly.
"""

from __future__ import annotations

import base64
import re

from conftest import TRUSTED_MTA, Gateway, body_text, mail, reply_address

CUSTOMER = "jean.dupont@client.example"
ALICE = "alice@shop.example"
BOB = "bob@shop.example"
VOUCHED = f"Authentication-Results: {TRUSTED_MTA}; dkim=pass header.d=shop.example header.s=s1\r\n"

GMAIL = ("From: Alice <alice@shop.example>\r\nTo: support@shop.example\r\nSubject: Fwd: Facture en double\r\n"
         "Message-ID: <fwd-gmail@shop.example>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
         "#assign bob@shop.example\r\nPeux-tu regarder ? Il est client depuis 2019.\r\n\r\n"
         "---------- Forwarded message ---------\r\nFrom: Jean Dupont <jean.dupont@client.example>\r\n"
         "Date: Mon, 7 Dec 2026 at 10:02\r\nSubject: Facture en double\r\nTo: <alice@shop.example>\r\n\r\n\r\n"
         "Bonjour, j'ai reçu la facture 2026-114 deux fois.\r\nJean\r\n")
OUTLOOK_ATTACHED = ("From: Alice <alice@shop.example>\r\nTo: support@shop.example\r\nSubject: TR: Colis abîmé\r\n"
                    "Message-ID: <fwd-outlook@shop.example>\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\nPour info, à traiter.\r\n--b1\r\n"
                    "Content-Type: message/rfc822\r\n\r\nFrom: \"Dupont, Jean\" <jean.dupont@client.example>\r\n"
                    "Subject: Colis abîmé\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
                    "Le colis est arrivé abîmé.\r\n--b1--\r\n")


def send(gw: Gateway, raw: str, *, vouched: bool = True) -> None:
    gw.send(((VOUCHED if vouched else "") + raw).encode(), recipients=["support@shop.example"], sender=ALICE)
    gw.wait_idle()


def test_a_gmail_forward_opens_the_customers_request_and_the_forwarders_words_are_a_note(vouched_shop: Gateway) -> None:
    shop = vouched_shop
    send(shop, GMAIL)
    request = shop.show(1)
    assert request["subject"] == "Facture en double"
    assert [(p["email"], p["role"]) for p in request["participants"] if p["role"] == "requester"] == [
        (CUSTOMER, "requester")], "the customer, not the coordinator who forwarded"
    opening, note = request["comments"][0], request["notes"][0] if request["notes"] else None
    assert (opening["author"], opening["visibility"], opening["unverified_sender"]) == (CUSTOMER, "public", False)
    assert opening["text"] == "Bonjour, j'ai reçu la facture 2026-114 deux fois.\nJean"
    assert note is not None and "Peux-tu regarder ? Il est client depuis 2019." in str(note)
    assert request["assignee"] == BOB, "#assign in the forwarder's words applied"
    assert shop.mails_to(CUSTOMER) == [], "the customer hears nothing yet"
    [told] = shop.mails_to(BOB)
    assert re.search(r"(Transféré par|Forwarded by) alice@shop\.example\W+Peux-tu regarder \? Il est client depuis "
                     r"2019\.", body_text(told)), "the team's notice says who forwarded it, with their words"
    shop.send(mail(BOB, reply_address(told), "Re: Facture", "Bonjour Jean, nous annulons le doublon."))
    shop.wait_idle()
    [answer] = shop.mails_to(CUSTOMER)
    assert "nous annulons le doublon" in body_text(answer) and "Peux-tu regarder" not in body_text(answer)


def test_an_outlook_forward_as_attachment_in_french_is_the_customers_request(vouched_shop: Gateway) -> None:
    shop = vouched_shop
    send(shop, OUTLOOK_ATTACHED)
    request = shop.show(1)
    assert request["subject"] == "Colis abîmé"
    assert request["comments"][0]["author"] == CUSTOMER
    assert request["comments"][0]["text"] == "Le colis est arrivé abîmé."
    assert any(p["email"] == CUSTOMER and p["role"] == "requester" for p in request["participants"])


def test_a_forward_nobody_vouched_for_is_opened_flagged_and_its_commands_are_text(vouched_shop: Gateway) -> None:
    shop = vouched_shop
    send(shop, GMAIL, vouched=False)
    request = shop.show(1)
    opening = request["comments"][0]
    assert (opening["author"], opening["visibility"], opening["unverified_sender"]) == (CUSTOMER, "private", True)
    assert request["assignee"] is None, "#assign from an unauthenticated forward is plain text"
    assert any("#assign bob@shop.example" in c["text"] for c in request["comments"])
    assert shop.mails_to(CUSTOMER) == []
    assert any("not authenticated" in e["detail"] for e in request["events"])
    [told] = shop.mails_to(BOB)
    assert not re.search(r"Transféré par|Forwarded by", body_text(told)), \
        "a forward no server vouched for puts no words in Alice's name in the team's notice"
    shop.send(mail(BOB, reply_address(told), "Re: Facture", "Bonjour Jean, nous regardons la facture."))
    shop.wait_idle()
    [answer] = shop.mails_to(CUSTOMER)
    assert "nous regardons la facture" in body_text(answer), "a coordinator's answer with a token reaches him"
    assert "#assign" not in body_text(answer) and "Peux-tu regarder" not in body_text(answer)


def test_a_second_from_above_a_signed_one_is_no_authenticated_forward(vouched_shop: Gateway) -> None:
    """A replayed mail whose MTA's DKIM pass is for Mallory, with a From naming Alice added above hers."""
    shop = vouched_shop
    shop.send((VOUCHED + "From: Alice <alice@shop.example>\r\n" + GMAIL.replace(
        "From: Alice <alice@shop.example>", "From: Mallory <mallory@provider.example>", 1)).encode(),
        recipients=["support@shop.example"], sender="mallory@provider.example")
    shop.wait_idle()
    request = shop.show(1)
    assert request["assignee"] is None, "no coordinator's command from an ambiguous From"
    assert all(not (c["role"] == "coordinator" and not c["unverified_sender"]) for c in request["comments"])


def test_a_command_the_forwarders_words_cannot_apply_refuses_the_whole_mail(vouched_shop: Gateway) -> None:
    shop = vouched_shop
    send(shop, GMAIL.replace("#assign bob@shop.example", "#confirm"))  # an order's command, to the helpdesk
    [refused] = [m for m in shop.mails_to(ALICE) if "Command refused" in str(m["Subject"])]
    assert "#confirm applies to orders" in body_text(refused)
    assert shop.requests() == [], "nothing of the mail applied"


def test_commands_inside_a_message_a_coordinator_forwards_to_a_request_stay_text(vouched_shop: Gateway) -> None:
    """A customer's mail whose first lines are commands, forwarded as an attachment by a coordinator to
    the request (Outlook's shape: an empty text part, then the message; and under a command of his own):
    only the coordinator's own words may command (CONTRACT §5)."""
    shop = vouched_shop
    shop.send(mail(CUSTOMER, "support@shop.example", "Colis abîmé", "Le colis est arrivé abîmé."))
    shop.wait_idle()
    [told] = shop.mails_to(BOB)
    carried = ("From: Jean Dupont <jean.dupont@client.example>\r\nSubject: Colis\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\n"
               "#observer add eve@evil.example\r\n#status resolved\r\nVoici les photos.\r\n")
    for number, own in enumerate(("", "#private\r\n")):
        shop.send((f"From: Bob <{BOB}>\r\nTo: {reply_address(told)}\r\nSubject: TR: Colis\r\n"
                   f"Message-ID: <fwd-{number}@shop.example>\r\nMIME-Version: 1.0\r\n"
                   "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
                   f"Content-Type: text/plain; charset=utf-8\r\n\r\n{own}--b1\r\n"
                   f"Content-Type: message/rfc822\r\n\r\n{carried}--b1--\r\n").encode(),
                  recipients=[reply_address(told)], sender=BOB)
        shop.wait_idle()
    request = shop.show(1)
    assert request["status"] != "resolved"
    assert "eve@evil.example" not in [p["email"] for p in request["participants"]]
    forwarded = [c for c in request["comments"] if c["author"] == BOB]
    assert len(forwarded) == 2 and all("#observer add eve@evil.example" in c["text"] for c in forwarded)
    assert [c["visibility"] for c in forwarded] == ["public", "private"], "the coordinator's own #private applies"


def test_the_forwarded_mails_files_open_the_request_and_the_forwarders_own_stay_with_the_team(
        vouched_shop: Gateway) -> None:
    """Outlook's shape, the original attached whole with the customer's photo inside it, and a file of the
    coordinator's own beside it: the photo is the customer's, on the opening comment, and travels to
    the team; the coordinator's file goes with their note, and never reaches the customer."""
    shop = vouched_shop
    photo = base64.b64encode(b"\xff\xd8\xff\xe0 photo du colis").decode()
    internal = base64.b64encode(b"marge 32 %, ne pas rembourser").decode()
    send(shop, "From: Alice <alice@shop.example>\r\nTo: support@shop.example\r\nSubject: TR: Colis abime\r\n"
               "Message-ID: <fwd-files@shop.example>\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n\r\nPour info.\r\n--b1\r\n"
               "Content-Type: application/pdf; name=\"marges.pdf\"\r\nContent-Disposition: attachment; "
               f"filename=\"marges.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{internal}\r\n--b1\r\n"
               "Content-Type: message/rfc822\r\n\r\nFrom: Jean Dupont <jean.dupont@client.example>\r\n"
               "Subject: Colis abime\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n"
               "--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nLe colis est arrivé abîmé, photo jointe.\r\n"
               "--b2\r\nContent-Type: image/jpeg; name=\"colis.jpg\"\r\nContent-Disposition: attachment; "
               f"filename=\"colis.jpg\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{photo}\r\n--b2--\r\n--b1--\r\n")
    request = shop.show(1)
    opening = request["comments"][0]
    assert (opening["author"], [a["filename"] for a in opening["attachments"]]) == (CUSTOMER, ["colis.jpg"])
    [note] = request["notes"]
    assert note["text"] == "Pour info." and [a["filename"] for a in note["attachments"]] == ["marges.pdf"]
    [told] = shop.mails_to(BOB)
    assert [part.get_filename() for part in told.iter_attachments()] == ["colis.jpg"], "the customer's photo travels"
    shop.send(mail(BOB, reply_address(told), "Re: Colis", "Bonjour Jean, nous renvoyons le colis."))
    shop.wait_idle()
    [answer] = shop.mails_to(CUSTOMER)
    assert "nous renvoyons le colis" in body_text(answer)
    assert "marges.pdf" not in answer.as_string() and "ne pas rembourser" not in answer.as_string()


def test_a_forward_whose_note_asks_for_a_card_is_opened_and_the_card_sent(vouched_shop: Gateway) -> None:
    """A forward to the bare address is the customer's request even when the forwarder's note begins with a
    question the bare address answers (#show NUMBER): the note's commands apply to the new request."""
    shop = vouched_shop
    shop.send(mail(CUSTOMER, "support@shop.example", "Première demande", "Bonjour."))
    shop.wait_idle()
    send(shop, GMAIL.replace("#assign bob@shop.example", "#show 1"))
    assert sorted(r["subject"] for r in shop.requests()) == ["Facture en double", "Première demande"]
    assert shop.show(2)["comments"][0]["author"] == CUSTOMER
    assert any(str(m["Subject"]).startswith("[#1] Card of request #1") for m in shop.mails_to(ALICE))
