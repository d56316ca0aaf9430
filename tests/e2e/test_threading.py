"""Threading without a token (References, subject tag), forwards, postmaster, attachments, loops."""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import Gateway, mail, write_home

CUSTOMER = "ines@client.example"


def opened(gw: Gateway, subject: str = "Commande 77") -> EmailMessage:
    gw.send(mail(CUSTOMER, "support@shop.example", subject, "Bonjour", message_id="<first@client.example>"))
    gw.wait_idle()
    return gw.mails_to(CUSTOMER)[0]


def test_a_reply_to_the_bare_address_threads_by_references(gateway: Gateway) -> None:
    acknowledgment = opened(gateway)
    gateway.send(mail(CUSTOMER, "support@shop.example", "Re: Commande 77", "Une précision",
                      In_Reply_To=str(acknowledgment["Message-ID"]),
                      References=f"<first@client.example> {acknowledgment['Message-ID']}"))
    gateway.send(mail(CUSTOMER, "support@shop.example", "Autre sujet", "Et encore",
                      References="<first@client.example>"))
    gateway.wait_idle()
    assert len(gateway.requests()) == 1
    assert [c["text"] for c in gateway.show(1)["comments"]] == ["Bonjour", "Une précision", "Et encore"]


def send_replies_one_after_the_other(gateway: Gateway) -> None:
    """Each mail goes on a new connection, so to either listener: the second must not overtake the first."""
    customers = [f"client{n}@client.example" for n in range(20)]
    for n, customer in enumerate(customers):
        gateway.send(mail(customer, "support@shop.example", f"Commande {n}", "Bonjour",
                          message_id=f"<o{n}@client.example>"))
    gateway.wait_idle()
    for n, customer in enumerate(customers):
        for text in ("Premier", "Second"):
            gateway.send(mail(customer, "support@shop.example", "Re: Commande", text,
                              References=f"<o{n}@client.example>"))
    gateway.wait_idle()
    assert gateway.count("SELECT count(*) FROM comments WHERE text IN ('Premier', 'Second')") == 40
    assert gateway.count("SELECT count(*) FROM comments first JOIN comments second ON first.request_id = "
                         "second.request_id WHERE first.text = 'Premier' AND second.text = 'Second' "
                         "AND second.id < first.id") == 0


def test_replies_sent_one_after_the_other_are_applied_in_the_order_sent(gateway: Gateway) -> None:
    send_replies_one_after_the_other(gateway)


@pytest.mark.postgres
def test_replies_sent_one_after_the_other_are_applied_in_the_order_sent_on_postgresql(
        tmp_path: Path, postgres_url: str) -> None:
    gateway = Gateway(write_home(tmp_path / "home", database_url=postgres_url), database_url=postgres_url).start()
    try:
        send_replies_one_after_the_other(gateway)
    finally:
        assert gateway.stop() == 0


def test_a_subject_tag_threads_only_for_a_participant(gateway: Gateway) -> None:
    opened(gateway)
    gateway.send(mail(CUSTOMER, "support@shop.example", "Re: [#1] Commande 77", "Par le sujet"))
    gateway.send(mail("stranger@else.example", "support@shop.example", "[#1] Commande 77", "Je m'invite"))
    gateway.wait_idle()
    requests = gateway.requests()
    assert len(requests) == 2, "a stranger's tag opens a request of their own"
    assert gateway.show(1)["comments"][-1]["text"] == "Par le sujet"
    assert [p["email"] for p in gateway.show(2)["participants"]][0] == "stranger@else.example"


def test_a_forward_of_an_embedded_message_opens_a_new_request(gateway: Gateway) -> None:
    acknowledgment = opened(gateway)
    forward = mail(CUSTOMER, "support@shop.example", "Fwd: Facture fournisseur", "Voir ci-dessous.",
                   In_Reply_To=str(acknowledgment["Message-ID"]))
    embedded = mail("supplier@else.example", CUSTOMER, "Facture fournisseur", "Montant : 120 EUR")
    forward.add_attachment(embedded)
    gateway.send(forward)
    gateway.wait_idle()
    assert [r["subject"] for r in gateway.requests()] == ["Fwd: Facture fournisseur", "Commande 77"]


def test_postmaster_and_abuse_are_always_accepted(gateway: Gateway) -> None:
    gateway.send(mail("admin@isp.example", "postmaster@shop.example", "Spam report", "Un souci"))
    gateway.send(mail("admin@isp.example", "abuse@shop.example", "Abuse report", "Un autre"))
    gateway.wait_idle()
    assert {r["mailbox"] for r in gateway.requests()} == {"support@shop.example"}
    assert len(gateway.requests()) == 2


def test_an_attachment_is_stored_once_whatever_mail_carried_it(gateway: Gateway) -> None:
    for number in range(2):
        message = mail(f"c{number}@client.example", "support@shop.example", f"Photo {number}", "Voir photo")
        message.add_attachment(b"\x89PNG same bytes", maintype="image", subtype="png", filename="colis.png")
        gateway.send(message)
    gateway.wait_idle()
    files = [p for p in (gateway.data / "attachments").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == b"\x89PNG same bytes"
    [attachment] = gateway.show(1)["comments"][0]["attachments"]
    assert (attachment["filename"], attachment["size"]) == ("colis.png", 15)


def test_our_own_mail_coming_back_is_ignored(gateway: Gateway) -> None:
    acknowledgment = opened(gateway)
    looped = email.message_from_bytes(acknowledgment.as_bytes(policy=email.policy.SMTP), policy=email.policy.default)
    del looped["Auto-Submitted"]
    gateway.send(looped, ["support@shop.example"])  # type: ignore[arg-type]
    gateway.wait_idle()
    assert len(gateway.requests()) == 1
    assert len(gateway.show(1)["comments"]) == 1
    assert gateway.count("SELECT count(*) FROM inbound WHERE decision LIKE '%our own message%'") == 1


def test_import_feeds_an_mbox_and_a_maildir_through_the_pipeline(gateway: Gateway, tmp_path: Path) -> None:
    import mailbox

    mbox = mailbox.mbox(tmp_path / "old.mbox")
    for number in range(3):
        mbox.add(mail(f"old{number}@client.example", "support@shop.example", f"Ancien {number}", "Archive"))
    mbox.add(mail("old0@client.example", "support@shop.example", "Ancien 0", "Archive",
                  message_id=str(mbox[0]["Message-ID"])))
    mbox.flush()
    mbox.close()
    result = gateway.cli("import", str(tmp_path / "old.mbox"), "--json")
    assert '"processed": 3' in result.stdout and '"duplicate": 1' in result.stdout
    maildir = mailbox.Maildir(tmp_path / "maildir", create=True)
    maildir.add(mail("md@client.example", "orders@shop.example", "Commande ancienne", "Archive"))
    before = len(gateway.outbox())
    result = gateway.cli("import", str(tmp_path / "maildir"), "--mailbox", "orders@shop.example", "--no-mail")
    assert "imported 1 messages: 1 processed" in result.stdout
    assert len(gateway.outbox()) == before, "--no-mail: nobody is told about history"
    kinds = sorted(r["kind"] for r in gateway.requests())
    assert kinds == ["helpdesk", "helpdesk", "helpdesk", "order"]
    missing = gateway.cli("import", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
