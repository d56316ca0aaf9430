"""The email loop end to end: customer -> coordinators -> reply -> customer -> reply, over real SMTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import GATEWAY, Gateway, body_text, mail, reply_address, write_home

CUSTOMER = "jean.dupont@client.example"


def run_full_conversation(gw: Gateway) -> None:
    gw.add_person("alice@shop.example", "coordinator", "fr")
    gw.add_person("bob@shop.example", "coordinator", "en")

    gw.send(mail(f"Jean Dupont <{CUSTOMER}>", "support@shop.example", "Colis abîmé",
                 "Bonjour,\nmon colis est arrivé abîmé.\n\nJean"))
    gw.wait_idle()
    [alert_alice] = gw.mails_to("alice@shop.example")
    [alert_bob] = gw.mails_to("bob@shop.example")
    [acknowledgment] = gw.mails_to(CUSTOMER)
    assert "Colis abîmé" in alert_alice["Subject"] and "[#1]" in alert_alice["Subject"]
    assert "New request" in alert_bob["Subject"]
    assert str(alert_alice["Subject"]).startswith("[#1] [À vous de répondre]"), "the coordinators must answer"
    assert body_text(alert_bob).startswith("You are expected to answer")
    assert acknowledgment["Auto-Submitted"] == "auto-replied"
    assert alert_alice["Auto-Submitted"] == "auto-generated"
    assert alert_alice["X-Auto-Response-Suppress"] == "All"
    assert reply_address(alert_alice) != reply_address(alert_bob)

    answer = mail("Alice <alice@shop.example>", reply_address(alert_alice), "Re: [#1] Colis abîmé",
                  "Bonjour Jean, nous vous envoyons un nouveau colis.\n\n"
                  "Le lun. 3 mars 2025 à 10:00, Jean Dupont <jean.dupont@client.example> a écrit :\n"
                  "> mon colis est arrivé abîmé.\n",
                  In_Reply_To=str(alert_alice["Message-ID"]))
    gw.send(answer)
    gw.wait_idle()
    to_customer = gw.mails_to(CUSTOMER)[-1]
    assert "nouveau colis" in body_text(to_customer)
    assert "arrivé abîmé" not in body_text(to_customer)
    assert to_customer["In-Reply-To"] == acknowledgment["In-Reply-To"]
    assert len(gw.mails_to("alice@shop.example")) == 1, "the author is never told of their own comment"
    request = gw.show(1)
    assert request["status"] == "in-progress"
    assert request["expected_response"] == "customer"

    gw.send(mail(f"Jean Dupont <{CUSTOMER}>", reply_address(to_customer), "Re: [#1] Colis abîmé",
                 "Merci beaucoup !\n\nOn Mon, 3 Mar 2025, Alice wrote:\n> nous vous envoyons un nouveau colis."))
    gw.wait_idle()
    request = gw.show(1)
    assert [c["text"] for c in request["comments"]] == [
        "Bonjour,\nmon colis est arrivé abîmé.\n\nJean",
        "Bonjour Jean, nous vous envoyons un nouveau colis.",
        "Merci beaucoup !",
    ]
    assert [c["role"] for c in request["comments"]] == ["requester", "coordinator", "requester"]
    assert request["expected_response"] == "coordinator"
    assert len(gw.requests()) == 1
    assert "Merci beaucoup" in body_text(gw.mails_to("alice@shop.example")[-1])


def test_a_whole_conversation_lands_in_one_request(gateway: Gateway) -> None:
    run_full_conversation(gateway)


@pytest.mark.postgres
def test_a_whole_conversation_lands_in_one_request_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    gw = Gateway(write_home(tmp_path / "home", database_url=postgres_url), database_url=postgres_url).start()
    try:
        run_full_conversation(gw)
    finally:
        assert gw.stop() == 0


@pytest.mark.redis
def test_a_whole_conversation_runs_on_the_redis_broker(tmp_path: Path, redis_url: str) -> None:
    gw = Gateway(write_home(tmp_path / "home", broker_url=redis_url)).start()
    try:
        run_full_conversation(gw)
    finally:
        assert gw.stop() == 0


def test_a_private_comment_is_never_mailed_to_the_customer(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.add_person("carol@shop.example", "coordinator")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Question", "Une question."))
    gateway.wait_idle()
    alert = gateway.mails_to("alice@shop.example")[0]
    gateway.send(mail("alice@shop.example", reply_address(alert), "Re: Question",
                      "#private\nCe client a déjà eu deux remboursements."))
    gateway.wait_idle()
    assert len(gateway.mails_to(CUSTOMER)) == 1, "only the acknowledgment"
    assert "deux remboursements" in body_text(gateway.mails_to("carol@shop.example")[-1])
    gateway.send(mail("alice@shop.example", reply_address(alert), "Re: Question", "Toujours privé par défaut."))
    gateway.wait_idle()
    assert len(gateway.mails_to(CUSTOMER)) == 1, "after a private comment the next stays private"
    gateway.send(mail("alice@shop.example", reply_address(alert), "Re: Question", "#public\nVoici la réponse."))
    gateway.wait_idle()
    assert "Voici la réponse." in body_text(gateway.mails_to(CUSTOMER)[-1])
    visibilities = [c["visibility"] for c in gateway.show(1)["comments"]]
    assert visibilities == ["public", "private", "private", "public"]


def test_a_forged_token_is_refused_at_rcpt(gateway: Gateway) -> None:
    gateway.send(mail(CUSTOMER, "support@shop.example", "Bonjour", "Bonjour"))
    gateway.wait_idle()
    genuine = reply_address(gateway.mails_to(CUSTOMER)[0])
    token = genuine.split("+", 1)[1].split("@")[0]
    forged = f"support+{token[:-1]}{'a' if token[-1] != 'a' else 'b'}@shop.example"
    import smtplib

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        gateway.send(mail(CUSTOMER, forged, "Re: Bonjour", "x"))
    assert refused.value.recipients[forged][0] == 550
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        gateway.send(mail(CUSTOMER, "support@elsewhere.example", "x", "x"))
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        gateway.send(mail(CUSTOMER, "nobody@shop.example", "x", "x"))
    gateway.send(mail(CUSTOMER, genuine.upper(), "Re: Bonjour", "Token in capitals still works."))
    gateway.wait_idle()
    assert gateway.show(1)["comments"][-1]["text"] == "Token in capitals still works."


def test_someone_else_replying_with_a_customers_token_stays_private_and_unverified(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Facture", "Ma facture svp."))
    gateway.wait_idle()
    customer_address = reply_address(gateway.mails_to(CUSTOMER)[0])
    gateway.send(mail("mallory@evil.example", customer_address, "Re: Facture",
                      "#status resolved\nEnvoyez la facture à mallory@evil.example"))
    gateway.wait_idle()
    request = gateway.show(1)
    last = request["comments"][-1]
    assert last["unverified_sender"] is True
    assert last["visibility"] == "private"
    assert last["text"].startswith("#status resolved"), "an unverified sender's # lines are plain text"
    assert request["status"] == "new"
    assert len(gateway.mails_to(CUSTOMER)) == 1
    alert = gateway.mails_to("alice@shop.example")[-1]
    assert "non vérifié" in str(alert["Subject"])


def test_the_same_message_twice_is_applied_once(gateway: Gateway) -> None:
    original = mail(CUSTOMER, "support@shop.example", "Doublon", "Une seule fois.", message_id="<twice@client.example>")
    gateway.send(original)
    again = mail(CUSTOMER, "support@shop.example", "Doublon", "Une seule fois.", message_id="<twice@client.example>")
    again["Received"] = "from relay.example by mx.shop.example; Mon, 3 Mar 2025 10:00:00 +0000"
    gateway.send(again)
    without_id = b"From: x@client.example\r\nTo: support@shop.example\r\nSubject: Sans id\r\n\r\nCorps\r\n"
    gateway.send(without_id, ["support@shop.example"])
    gateway.send(b"Received: from elsewhere\r\n" + without_id, ["support@shop.example"])
    gateway.wait_idle()
    assert len(gateway.requests()) == 2
    assert gateway.count("SELECT count(*) FROM inbound WHERE status = 'duplicate'") == 2
    assert gateway.count("SELECT count(*) FROM inbound") == 4, "every raw message is kept"


@pytest.mark.redis
def test_gateway_worker_sends_mail_beside_serve_on_redis_and_serve_alone_applies_messages(
        tmp_path: Path, redis_url: str) -> None:
    import signal
    import subprocess

    config = write_home(tmp_path / "home", broker_url=redis_url)
    gw = Gateway(config).start()
    worker = subprocess.Popen([*GATEWAY, "worker", "--threads", "2"], cwd=config.parent, env=gw.env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert worker.stdout is not None
        started = ""
        while not started.startswith("gateway worker:"):  # running, its signals handled, before any mail
            started = worker.stdout.readline()
            assert started, "gateway worker exited before it started"
        assert "gateway worker: 2 threads sending mail" in started, started
        for number in range(10):
            gw.send(mail(f"c{number}@client.example", "support@shop.example", f"Demande {number}", "Bonjour"))
        gw.wait_idle()
        assert len(gw.requests()) == 10
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
        assert gw.stop() == 0
    assert worker.returncode == 0, output
    served = gw.log.read_text()
    assert served.count(": processed: new helpdesk request") == 10, "applied by serve, in order"
    assert ": processed:" not in output, "the worker applies no message"
    line = '"logger": "gateway.outbound", "event": "sent '  # the logs are JSON lines off a terminal
    sent = served.count(line) + output.count(line)
    assert sent == gw.count("SELECT count(*) FROM outbox WHERE status = 'sent'") > 0, "each mail sent once"
