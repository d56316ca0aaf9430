"""Mail as real senders send it, through a running ``gateway serve``: Python scripts that hand
``smtplib`` bytes with LF line ends, mailers that put raw UTF-8 in headers, clients that ask for
SMTPUTF8, and the smuggling tricks of hostile ones. Each becomes a request or a comment."""

from __future__ import annotations

import smtplib
import textwrap
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import SMTPUTF8 as SMTPUTF8_POLICY

import pytest
from conftest import Gateway, body_text, mail, reply_address

CUSTOMER = "jerome@client.example"
LONG_TEXT = "\n\n".join(textwrap.fill(f"Paragraphe {n} : " + "le colis est arrivé ouvert et il manque une pièce. " * 6,
                                      width=72) for n in range(8))


def sendmail_bytes(gw: Gateway, sender: str, recipients: list[str], message: bytes,
                   options: tuple[str, ...] = ()) -> dict[str, tuple[int, bytes]]:
    """What a script does: ``smtplib.sendmail`` with the bytes of ``as_bytes()``, sent as they are."""
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
        return client.sendmail(sender, recipients, message, mail_options=list(options))


def test_a_long_message_with_lf_line_ends_is_taken_in_threaded_and_answered(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    message = mail(f"Jérôme <{CUSTOMER}>", "support@shop.example", "Colis ouvert", LONG_TEXT)
    raw = message.as_bytes()
    assert b"\r\n" not in raw and len(raw) > 2048  # what as_bytes() gives, and what smtplib sends
    assert sendmail_bytes(gateway, CUSTOMER, ["support@shop.example"], raw) == {}
    gateway.wait_idle()
    [request] = gateway.requests()
    assert request["subject"] == "Colis ouvert"
    assert gateway.show(request["number"])["comments"][0]["text"] == LONG_TEXT
    [acknowledgment] = gateway.mails_to(CUSTOMER)
    [alert] = gateway.mails_to("alice@shop.example")

    answer = mail("alice@shop.example", reply_address(alert), f"Re: {alert['Subject']}",
                  "Nous renvoyons la pièce aujourd'hui.", In_Reply_To=str(alert["Message-ID"]))
    assert sendmail_bytes(gateway, "alice@shop.example", [reply_address(alert)], answer.as_bytes()) == {}
    gateway.wait_idle()
    to_customer = gateway.mails_to(CUSTOMER)[-1]
    assert "renvoyons la pièce" in body_text(to_customer)

    history = body_text(to_customer) + "\n\n" + LONG_TEXT  # the notification, and the thread below it
    quoted = "\n".join("> " + line for line in history.splitlines())
    reply = mail(f"Jérôme <{CUSTOMER}>", reply_address(to_customer), f"Re: {to_customer['Subject']}",
                 f"Merci, bien reçu.\n\nLe 6 déc. 2026 à 10:00, Boutique Test a écrit :\n{quoted}\n",
                 In_Reply_To=str(to_customer["Message-ID"]))
    raw_reply = reply.as_bytes()
    assert b"\r\n" not in raw_reply and len(raw_reply) > 2048
    assert sendmail_bytes(gateway, CUSTOMER, [reply_address(to_customer)], raw_reply) == {}
    gateway.wait_idle()
    shown = gateway.show(request["number"])
    assert [c["text"] for c in shown["comments"]][1:] == ["Nous renvoyons la pièce aujourd'hui.", "Merci, bien reçu."]
    assert shown["comments"][-1]["role"] == "requester"
    assert len(gateway.requests()) == 1
    assert acknowledgment["Auto-Submitted"] == "auto-replied"


@pytest.mark.parametrize("variant", [b"\n.\n", b"\r.\r\n", b"\n.\r\n", b"\r\n.\n"],
                         ids=["LF.LF", "CR.CRLF", "LF.CRLF", "CRLF.LF"])
def test_a_smuggled_end_of_data_stays_inside_the_one_message(gateway: Gateway, variant: bytes) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    smuggled = (b"MAIL FROM:<alice@shop.example>\r\nRCPT TO:<support@shop.example>\r\nDATA\r\n"
                b"From: alice@shop.example\r\nTo: support@shop.example\r\nSubject: smuggled\r\n\r\n"
                b"I am Alice.\r\n")
    head = (f"From: {CUSTOMER}\r\nTo: support@shop.example\r\nSubject: Question\r\n"
            "Message-ID: <smuggling@client.example>\r\n\r\nBonjour.").encode()
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail(CUSTOMER)
        client.rcpt("support@shop.example")
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(head + variant + smuggled + b"\r\n.\r\n")
        code, answer = client.getreply()
        assert code == 250, answer
        assert client.noop()[0] == 250  # nothing was left over that the server took as commands
    gateway.wait_idle()
    assert gateway.count("SELECT count(*) FROM inbound") == 1
    [request] = gateway.requests()
    assert request["subject"] == "Question"
    [comment] = gateway.show(request["number"])["comments"]
    assert comment["author"] == CUSTOMER and "I am Alice." in comment["text"] and "smuggled" in comment["text"]


def test_raw_utf8_headers_and_an_smtputf8_address_give_a_request_with_the_right_names(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    sender = "jérôme@client.example"
    message = EmailMessage(policy=SMTPUTF8_POLICY)  # raw UTF-8 headers, as RFC 6532 allows
    message["From"] = f"Jérôme Lefèvre <{sender}>"
    message["To"] = "support@shop.example"
    message["Subject"] = "Facture d’été, réclamation"
    message["Message-ID"] = "<utf8@client.example>"
    message.set_content("Voici la facture de l’été.")
    message.add_attachment(b"%PDF-1.4\n", maintype="application", subtype="pdf", filename="facture_été.pdf")
    raw = message.as_bytes()
    # the file name as raw UTF-8 in the header too, as many mailers write it (no RFC 2231 encoding)
    raw = raw.replace(b"filename*=utf-8''facture_%C3%A9t%C3%A9.pdf", 'filename="facture_été.pdf"'.encode())
    assert 'filename="facture_été.pdf"'.encode() in raw and "Subject: Facture d’été".encode() in raw
    assert sendmail_bytes(gateway, sender, ["support@shop.example"], raw, ("SMTPUTF8",)) == {}
    gateway.wait_idle()
    [request] = gateway.requests()
    assert request["subject"] == "Facture d’été, réclamation"
    shown = gateway.show(request["number"])
    [comment] = shown["comments"]
    assert comment["author"] == sender and comment["text"] == "Voici la facture de l’été."
    assert [a["filename"] for a in comment["attachments"]] == ["facture_été.pdf"]
    assert {"email": sender, "name": "Jérôme Lefèvre", "role": "requester"}.items() <= shown["participants"][0].items()
    [alert] = gateway.mails_to("alice@shop.example")
    assert "Facture d’été" in str(alert["Subject"])
    [acknowledgment] = gateway.mails_to(sender)
    assert "Facture d’été" in str(acknowledgment["Subject"])


def test_latin1_bytes_in_a_header_are_read_as_text_not_replacement_characters(gateway: Gateway) -> None:
    message = mail("someone@client.example", "support@shop.example", "x", "Bonjour.").as_bytes(policy=SMTP_POLICY)
    message = message.replace(b"From: someone@client.example", b"From: Ren\xe9 <rene@client.example>")
    message = message.replace(b"Subject: x", b"Subject: R\xe9clamation \x80 200")
    assert sendmail_bytes(gateway, "rene@client.example", ["support@shop.example"], message) == {}
    gateway.wait_idle()
    [request] = gateway.requests()
    assert request["subject"] == "Réclamation € 200"
    assert gateway.show(request["number"])["participants"][0]["name"] == "René"


def test_a_message_the_pipeline_breaks_on_is_kept_degraded_and_the_coordinators_are_told(gateway: Gateway) -> None:
    """A home template with a bug stands for any fault of a step: the customer's mail still reaches a person."""
    gateway.add_person("alice@shop.example", "coordinator", "en")
    broken = gateway.home / "templates" / "mail" / "fr" / "acknowledgment.customer.txt.j2"
    broken.parent.mkdir(parents=True)
    broken.write_text("{{ 1 / 0 }}\n")
    gateway.send(mail(f"Jérôme <{CUSTOMER}>", "support@shop.example", "Colis abîmé", "Il est arrivé abîmé."))
    gateway.wait_idle()
    [request] = gateway.requests()
    shown = gateway.show(request["number"])
    [comment] = shown["comments"]
    assert comment["text"] == "Il est arrivé abîmé." and comment["author"] == CUSTOMER
    assert comment["visibility"] == "private" and "ZeroDivisionError" in comment["degraded"]
    assert [a["filename"] for a in comment["attachments"]] == [f"message-{shown['messages'][0]['id']}.eml"]
    assert shown["messages"][0]["status"] == "degraded"
    [alert] = gateway.mails_to("alice@shop.example")
    assert "could not be processed" in str(alert["Subject"]) and f"[#{request['number']}]" in str(alert["Subject"])
    assert "ZeroDivisionError" in body_text(alert) and "Il est arrivé abîmé." in body_text(alert)
    assert gateway.mails_to(CUSTOMER) == []
    log = gateway.log.read_text()
    assert f"message {shown['messages'][0]['id']} could not be applied: ZeroDivisionError" in log
    assert "degraded: private comment on #" in log


def test_what_the_gateway_keeps_is_readable_by_its_own_user_alone(gateway: Gateway) -> None:
    message = mail(f"Jérôme <{CUSTOMER}>", "support@shop.example", "Facture", "Ci-joint.")
    message.add_attachment(b"%PDF-1.4\n", maintype="application", subtype="pdf", filename="facture.pdf")
    gateway.send(message)
    gateway.wait_idle()
    kept = [gateway.data, *gateway.data.rglob("*")]
    assert any(p.name == "gateway.db" for p in kept) and any("attachments" in p.parts for p in kept)
    assert any("raw" in p.parts for p in kept) and any("outbox" in p.parts for p in kept)
    opened = [f"{p.relative_to(gateway.home)} {oct(p.stat().st_mode & 0o777)}" for p in kept
              if p.stat().st_mode & 0o077]
    assert opened == []
