"""Rights come from a secret or from authentication, never from a From header (CONTRACT §4).

Each test replays a way in that a security review found on a live gateway: a customer writing
as a coordinator to her own reply address, a stranger threading by subject tag or In-Reply-To,
Python's lax address parsing. A coordinator keeps every right with their own token, with a
fellow coordinator's, and without a token when the site's own MTA vouches for the mail.
"""

from __future__ import annotations

import base64
import smtplib
import time
from pathlib import Path

import pytest
from conftest import TRUSTED_MTA, Gateway, body_text, mail, reply_address, write_home

from gateway.tokens import mint_reply_token

CUSTOMER = "jean@client.example"
ALICE = "alice@shop.example"
BOB = "bob@shop.example"
TRUSTED = TRUSTED_MTA


@pytest.fixture
def shop(vouched_shop: Gateway) -> Gateway:
    return vouched_shop


def open_request(gw: Gateway, mailbox: str = "support@shop.example") -> None:
    gw.send(mail(f"Jean <{CUSTOMER}>", mailbox, "Question", "Bonjour, une question."))
    gw.wait_idle()


def last_comment(gw: Gateway) -> dict[str, object]:
    return dict(gw.show(1)["comments"][-1])


def test_a_customer_writing_as_a_coordinator_to_her_own_address_is_an_unverified_private_comment(
        shop: Gateway) -> None:
    shop.send(mail(f"Jean <{CUSTOMER}>", "orders@shop.example", "Devis", "Combien ?"))
    shop.wait_idle()
    [acknowledgment] = shop.mails_to(CUSTOMER)
    shop.send(mail(f"Alice <{ALICE}>", reply_address(acknowledgment), "Re: Devis",
                   "#quote 1.00 EUR\n#paid 1.00 FAKE\n#confirm\nOK pour 1 euro."))
    shop.wait_idle()
    request = shop.show(1)
    assert request["status"] == "pending" and request["quotes"] == []
    assert request["order"]["payment_status"] != "paid"
    comment = request["comments"][-1]
    assert comment["unverified_sender"] is True and comment["visibility"] == "private"
    assert comment["text"].startswith("#quote 1.00 EUR"), "the # lines are plain text"
    assert len(shop.mails_to(CUSTOMER)) == 1, "the customer is never told of an unverified comment"


@pytest.mark.parametrize("threading", ["subject tag", "In-Reply-To"])
def test_a_stranger_threading_without_a_token_cannot_add_an_observer(shop: Gateway, threading: str) -> None:
    open_request(shop)
    [acknowledgment] = shop.mails_to(CUSTOMER)
    headers = {"In_Reply_To": str(acknowledgment["Message-ID"])} if threading == "In-Reply-To" else {}
    shop.send(mail(f"Alice <{ALICE}>", "support@shop.example", "Re: [#1] Question",
                   "#observer add spy@evil.example\nJe suis Alice.", **headers))
    shop.wait_idle()
    request = shop.show(1)
    assert "spy@evil.example" not in [p["email"] for p in request["participants"]]
    comment = request["comments"][-1]
    assert comment["unverified_sender"] is True and comment["visibility"] == "private"
    told = shop.mails_to(ALICE)[-1]
    assert "Je suis Alice." in body_text(told) and "nverified" in str(told["Subject"]), \
        "Alice is told that someone wrote as her"
    shop.send(mail(f"Jean <{CUSTOMER}>", reply_address(acknowledgment), "Re: Question", "Encore moi."))
    shop.wait_idle()
    assert shop.mails_to("spy@evil.example") == []


def test_a_from_that_python_would_read_as_a_coordinator_is_unverified(shop: Gateway) -> None:
    open_request(shop)
    [alert] = shop.mails_to(ALICE)
    raw = (f"From: <{ALICE}>@attacker.example\r\nTo: {reply_address(alert)}\r\nSubject: Re: [#1] Question\r\n"
           f"Authentication-Results: {TRUSTED}; dkim=pass header.d=shop.example\r\n"
           "Message-ID: <lax@attacker.example>\r\n\r\n#status resolved\r\nFermé.\r\n").encode()
    shop.send(raw, recipients=[reply_address(alert)], sender="x@attacker.example")
    shop.wait_idle()
    assert shop.show(1)["status"] == "new"
    assert last_comment(shop)["unverified_sender"] is True


def test_coordinators_answer_with_their_own_token_or_a_fellow_coordinators(shop: Gateway) -> None:
    open_request(shop)
    [to_alice] = shop.mails_to(ALICE)
    [to_bob] = shop.mails_to(BOB)
    shop.send(mail(f"Bob <{BOB}>", reply_address(to_alice), "Re: Question", "#label urgent\nJe regarde."))
    shop.wait_idle()
    assert shop.show(1)["labels"] == ["urgent"]
    assert last_comment(shop)["unverified_sender"] is False
    shop.send(mail(f"Bob <{BOB}>", reply_address(to_bob), "Re: Question", "#status resolved\nC'est fait."))
    shop.wait_idle()
    assert shop.show(1)["status"] == "resolved"
    assert "C'est fait." in body_text(shop.mails_to(CUSTOMER)[-1])


def send_as_alice_to_number_1(shop: Gateway, authserv_id: str, body: str) -> None:
    """Alice's mail to the bare mailbox, tagged [#1], with no token: DKIM-signed as ``authserv_id`` says."""
    raw = (f"Authentication-Results: {authserv_id}; dkim=pass header.d=shop.example header.s=s1;\r\n"
           "  spf=pass smtp.mailfrom=shop.example\r\n"
           f"From: Alice <{ALICE}>\r\nTo: support@shop.example\r\nSubject: Re: [#1] Question\r\n"
           f"Message-ID: <authenticated@shop.example>\r\n\r\n{body}\r\n").encode()
    shop.send(raw, recipients=["support@shop.example"], sender=ALICE)
    shop.wait_idle()


@pytest.mark.parametrize("authserv_id, applies", [(TRUSTED, True), ("mx.attacker.example", False)])
def test_without_a_token_a_coordinator_needs_the_trusted_mtas_dkim_pass(shop: Gateway, authserv_id: str,
                                                                         applies: bool) -> None:
    open_request(shop)
    send_as_alice_to_number_1(shop, authserv_id, "#label urgent\r\nJe m'en occupe.")
    assert (shop.show(1)["labels"] == ["urgent"]) is applies
    assert last_comment(shop)["unverified_sender"] is not applies


def test_forged_reply_addresses_are_refused_at_rcpt_and_never_threaded(shop: Gateway) -> None:
    open_request(shop)
    [acknowledgment] = shop.mails_to(CUSTOMER)
    token = reply_address(acknowledgment).split("+", 1)[1].split("@", 1)[0]
    raw = bytearray(base64.b32decode(token.upper() + "=" * (-len(token) % 8)))
    raw[9] ^= 1  # the participant named, its signature kept
    edited = base64.b32encode(bytes(raw)).decode().rstrip("=").lower()
    forged = [mint_reply_token("another-secret-key-of-forty-characters!!", "support", 1, 1), edited, token[:-2],
              token + "aa", token[:-1] + ("a" if token[-1] != "a" else "b")]
    addresses = [f"support+{f}@shop.example" for f in forged] + [f"orders+{token}@shop.example"]
    with smtplib.SMTP("127.0.0.1", shop.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail(CUSTOMER)
        for address in addresses:
            code, answer = client.rcpt(address)
            assert code == 550, (address, answer)
        assert client.rcpt(reply_address(acknowledgment))[0] == 250
        client.rset()
    for address in addresses:  # in the headers only, to the bare address: a request of its own
        shop.send(mail(f"Jean <{CUSTOMER}>", address, "Re: Question", "#public\nSuite."),
                  recipients=["support@shop.example"])
    shop.wait_idle()
    assert len(shop.requests()) == 1 + len(addresses)
    assert len(shop.show(1)["comments"]) == 1


def test_a_participant_removed_from_a_request_gets_550_at_rcpt(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home", extra="sweep_seconds = 1")).start()
    try:
        gw.add_person(ALICE, "coordinator", "en")
        open_request(gw)
        [alert] = gw.mails_to(ALICE)
        gw.reply(ALICE, alert, "#observer add watcher@partner.example\n#private\nJe mets Paul en copie.")
        gw.send(mail(f"Jean <{CUSTOMER}>", reply_address(gw.mails_to(CUSTOMER)[0]), "Re: Question", "Merci."))
        gw.wait_idle()
        to_watcher = gw.mails_to("watcher@partner.example")[-1]
        watcher_address = reply_address(to_watcher)
        with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail("watcher@partner.example")
            assert client.rcpt(watcher_address)[0] == 250
        gw.reply(ALICE, alert, "#observer remove watcher@partner.example")
        deadline = time.monotonic() + 10
        while True:
            with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
                client.ehlo()
                client.mail("watcher@partner.example")
                code, answer = client.rcpt(watcher_address)
            if code == 550 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert (code, answer) == (550, b"5.7.1 this reply address is no longer valid: you were removed from "
                                       b"this request")
        assert client_can_still_reach(gw, reply_address(gw.mails_to(CUSTOMER)[0]))
    finally:
        assert gw.stop() == 0


def client_can_still_reach(gw: Gateway, address: str) -> bool:
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail(CUSTOMER)
        return client.rcpt(address)[0] == 250


MANAGER = "claire.martin@client.example"


def test_the_customers_colleagues_in_cc_become_observers_and_a_reply_to_all_is_theirs(shop: Gateway) -> None:
    opening = mail(f"Jean <{CUSTOMER}>", "support@shop.example", "Facture", "Bonjour, la facture est fausse.",
                   message_id="<facture@client.example>")
    opening["Cc"] = (f"Claire Martin <{MANAGER}>, support@shop.example, {ALICE}, "
                     "no-reply@client.example")
    shop.send(opening, ["support@shop.example"])
    shop.wait_idle()
    participants = {(p["email"], p["role"], p["mail_only"]) for p in shop.show(1)["participants"]
                    if p["role"] != "coordinator"}
    assert participants == {(CUSTOMER, "requester", False), (MANAGER, "observer", True)}, \
        "not the gateway's own address, not a coordinator, not a robot"
    [notice] = shop.mails_to(ALICE)
    assert f"now mail-only observers: {MANAGER}" in body_text(notice) and "#observer remove" in body_text(notice)
    reply_all = (f"Authentication-Results: {TRUSTED}; dkim=pass header.d=client.example header.s=s1\r\n"
                 f"From: Claire Martin <{MANAGER}>\r\nTo: Jean <{CUSTOMER}>\r\nCc: support@shop.example\r\n"
                 "Subject: RE: Facture\r\nMessage-ID: <accord@client.example>\r\n"
                 "In-Reply-To: <facture@client.example>\r\nReferences: <facture@client.example>\r\n\r\n"
                 "Accord donné.\r\n").encode()
    shop.send(reply_all, recipients=["support@shop.example"], sender=MANAGER)
    shop.wait_idle()
    comment = last_comment(shop)
    assert (comment["author"], comment["role"], comment["visibility"], comment["unverified_sender"]) == (
        MANAGER, "observer", "public", False)
    assert any("Accord donné." in body_text(m) for m in shop.mails_to(CUSTOMER)), "the customer sees it"
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Facture", "#private\nMarge faible, attention."))
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Facture", "#public\nAvoir émis."))
    shop.wait_idle()
    to_manager = [body_text(m) for m in shop.mails_to(MANAGER)]
    assert any("Avoir émis." in text for text in to_manager), "the customer's colleague gets the public answers"
    assert not any("Marge faible" in text for text in to_manager), "never a team comment: what the customer sees"
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Facture", f"#observer remove {MANAGER}"))
    shop.wait_idle()
    assert any(f"{MANAGER} removed" in e["detail"] for e in shop.show(1)["events"])


def test_a_mailbox_can_keep_the_cc_out(tmp_path: Path) -> None:
    home = write_home(tmp_path / "home")
    home.write_text(home.read_text().replace('include_supplier = false\n',
                                             'include_supplier = false\ncc_become_observers = false\n', 1))
    running = Gateway(home).start()
    try:
        opening = mail(f"Jean <{CUSTOMER}>", "support@shop.example", "Facture", "Bonjour.")
        opening["Cc"] = MANAGER
        running.send(opening, ["support@shop.example"])
        running.wait_idle()
        assert [p["email"] for p in running.show(1)["participants"] if p["role"] != "coordinator"] == [CUSTOMER]
    finally:
        assert running.stop() == 0


@pytest.mark.parametrize("sender", ["=?utf-8?q?a:jean@client.example:?= <eve@evil.example>",
                                    "jean@client.example <eve@evil.example>"],
                         ids=["an encoded group", "an address as the display name"])
def test_a_new_request_from_a_from_read_two_ways_is_flagged_and_its_customer_not_mailed(
        shop: Gateway, sender: str) -> None:
    """The gateway reads Jean, the mail servers that checked the mail (DMARC) read Eve: the request is
    opened, unverified, and the customer it names hears nothing until a coordinator answers."""
    shop.send(f"From: {sender}\r\nTo: support@shop.example\r\nSubject: Commande\r\n"
              "Message-ID: <ambiguous@evil.example>\r\n\r\nConfirmez ma commande sur ma carte.\r\n".encode(),
              recipients=["support@shop.example"], sender="eve@evil.example")
    shop.wait_idle()
    request = shop.show(1)
    opening = request["comments"][0]
    assert (opening["visibility"], opening["unverified_sender"]) == ("private", True)
    assert any(e["kind"] == "unverified" and "ambiguous From" in e["detail"] for e in request["events"])
    assert shop.mails_to(CUSTOMER) == [], "no acknowledgment to an address that may not have written"
    assert shop.mails_to(ALICE), "the coordinators are told"


def test_the_customers_colleague_cannot_switch_off_the_teams_private_habit(shop: Gateway) -> None:
    """A mail-only observer from the customer's Cc writes ``#public`` after a private team comment: the
    team's next plain reply stays private all the same, and the colleague's words stay text, mailed to
    the customer as theirs."""
    opening = mail(f"Jean <{CUSTOMER}>", "support@shop.example", "Facture", "Bonjour, la facture est fausse.")
    opening["Cc"] = f"Claire Martin <{MANAGER}>"
    shop.send(opening, ["support@shop.example"])
    shop.wait_idle()
    [notice] = shop.mails_to(ALICE)
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Facture", "Nous regardons."))
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Facture", "#private\nMarge faible, attention."))
    shop.wait_idle()
    [answer] = shop.mails_to(MANAGER)
    shop.send(mail(f"Claire Martin <{MANAGER}>", reply_address(answer), "Re: Facture",
                   "#public\nMerci, nous attendons l'avoir."))
    shop.wait_idle()
    said = last_comment(shop)
    assert (said["author"], said["visibility"]) == (MANAGER, "public")
    assert said["text"].startswith("#public"), "a team command from the customer's side is text"
    shop.send(mail(f"Alice <{ALICE}>", reply_address(notice), "Re: Facture", "Fournisseur en retard, ne rien dire."))
    shop.wait_idle()
    assert last_comment(shop)["visibility"] == "private", "the team's habit holds"
    assert not any("Fournisseur en retard" in body_text(m) for m in shop.mails_to(CUSTOMER) + shop.mails_to(MANAGER))


def test_a_strangers_forged_comments_cannot_use_up_the_hours_mails_about_a_request(tmp_path: Path) -> None:
    """Mails about comments that came with no reply token have an hourly limit of their own: a stranger who
    writes as Bob, then as the customer, with the request's subject tag, more times than the limit, is cut
    off, and Alice still hears of the customer's real reply."""
    gw = Gateway(write_home(tmp_path / "home", extra="mails_per_hour = 3")).start()
    try:
        gw.add_person(ALICE, "coordinator")
        gw.add_person(BOB, "coordinator")
        open_request(gw)
        told = len(gw.mails_to(ALICE))
        for number in range(2):
            gw.send(mail(f"Bob <{BOB}>", "support@shop.example", "Re: [#1] Question", f"Faux {number}"),
                     sender="spy@evil.example")
        gw.wait_idle()
        for number in range(3):
            gw.send(mail(f"Jean <{CUSTOMER}>", "support@shop.example", "Re: [#1] Question", f"Faux Jean {number}"),
                     sender="spy@evil.example")
        gw.wait_idle()
        assert len(gw.mails_to(ALICE)) == told + 3, "the tokenless comments' own limit: 3 mails an hour"
        assert sorted(e["detail"] for e in gw.show(1)["events"] if e["kind"] == "rate-limited") == [
            f"comment to {person}: 3 mails about comments that came with no reply token in the last hour"
            for person in (ALICE, ALICE, BOB, BOB)], "Bob, whom two of them name, is told of all five"
        [acknowledgment] = gw.mails_to(CUSTOMER)
        gw.send(mail(f"Jean <{CUSTOMER}>", reply_address(acknowledgment), "Re: Question", "Voici ma vraie réponse."))
        gw.wait_idle()
        assert "Voici ma vraie réponse." in body_text(gw.mails_to(ALICE)[-1]), "the real reply reaches the team"
    finally:
        assert gw.stop() == 0


@pytest.mark.parametrize("authserv_id, applies", [(TRUSTED, True), ("mx.attacker.example", False)])
def test_a_coordinator_takes_up_a_request_an_automatic_mail_opened_by_its_tag(shop: Gateway, authserv_id: str,
                                                                              applies: bool) -> None:
    """No one was told of a request a list's mail opened, so no coordinator has its token: its subject tag
    threads a coordinator's mail to it, with their MTA's word a coordinator's (``#unlabel automatic``: a
    person wrote it), else an unverified comment on it, never a new request in their name."""
    shop.send(mail("Nadia <nadia@client.example>", "support@shop.example", "Absente jusqu'au 15 : livrez après",
                   "Ma commande 88.", List_Id="<clients.client.example>"))
    shop.wait_idle()
    assert shop.show(1)["labels"] == ["automatic"]
    send_as_alice_to_number_1(shop, authserv_id, "#unlabel automatic\r\nUne vraie cliente.")
    assert len(shop.requests()) == 1, "no new request in Alice's name"
    assert (shop.show(1)["labels"] == []) is applies
    assert last_comment(shop)["unverified_sender"] is not applies
