"""Nothing lost, clear errors: crashes, oversize mail, malformed MIME, robots."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import threading
import time
from email.message import Message
from pathlib import Path

import pytest
from conftest import GATEWAY, Gateway, alive, body_text, mail, reply_address, write_home

from gateway.intake.listener import LISTENERS
from gateway.intake.spool import Envelope, write_incoming

CUSTOMER = "marie@client.example"
STREAM = 5000  # long enough that the kill, sent once 20 are in, lands before the end of it on a loaded machine


def test_kill_9_in_a_stream_of_mails_loses_none_that_got_250(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home")).start()
    accepted: list[str] = []
    killed = threading.Event()

    def stream() -> None:
        try:
            with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10) as client:
                for number in range(STREAM):
                    message_id = f"<stream-{number}@client.example>"
                    client.send_message(mail(f"c{number}@client.example", "support@shop.example",
                                             f"Demande {number}", "Bonjour", message_id=message_id))
                    accepted.append(message_id)
        except (smtplib.SMTPException, OSError):
            assert killed.is_set(), "the connection broke before the kill"

    sender = threading.Thread(target=stream)
    sender.start()
    deadline = time.monotonic() + 60
    while len(accepted) < 20 and sender.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(accepted) >= 20, "the stream did not start"
    killed.set()
    children = gw.children()
    gw.kill()
    sender.join()
    assert 20 <= len(accepted) < STREAM, "the kill landed in the middle of the stream"
    deadline = time.monotonic() + 10
    while any(alive(child) for child in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(children) >= 2 and not any(alive(child) for child in children), "no listener nor processor left"

    gw.start()
    gw.wait_idle(timeout=180)  # the backlog is applied at a low priority: on a loaded machine it can take a while
    subjects = {r["subject"] for r in gw.requests()}
    assert {f"Demande {n}" for n in range(len(accepted))} <= subjects
    assert gw.stop() == 0


def test_a_message_acknowledged_but_not_admitted_before_a_crash_is_processed_at_start(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home"))
    (gw.data / "incoming").mkdir(parents=True)
    write_incoming(gw.data, [(mail(CUSTOMER, "support@shop.example", "Avant la panne", "Bonjour").as_bytes(),
                              Envelope("smtp", "support@shop.example", CUSTOMER, ("support@shop.example",)))])
    gw.start()
    try:
        gw.wait_idle()
        assert [r["subject"] for r in gw.requests()] == ["Avant la panne"]
        assert not list((gw.data / "incoming").glob("*.eml")), "admitted: only the listener's spares are left"
    finally:
        assert gw.stop() == 0


def test_a_message_over_the_size_limit_gets_552(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home", sections="[smtp]\nmax_message_size = 50000")).start()
    try:
        with pytest.raises(smtplib.SMTPException) as refused:
            gw.send(mail(CUSTOMER, "support@shop.example", "Gros", "x" * 60_000))
        assert "552" in str(refused.value)
        gw.send(mail(CUSTOMER, "support@shop.example", "Petit", "x" * 1000))
        gw.wait_idle()
        assert [r["subject"] for r in gw.requests()] == ["Petit"]
    finally:
        assert gw.stop() == 0


def test_auto_replies_are_recorded_but_neither_posted_nor_answered(gateway: Gateway) -> None:
    """On a request, an automatic mail is an event; with none, it opens one, labelled ``automatic``, that the
    team is told of and that nothing automatic answers: a mail kept where no person looks is lost (and
    customers' mail is sometimes taken for a robot's). A coordinator who removes the label says a person
    wrote it."""
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.send(mail(CUSTOMER, "support@shop.example", "Retour", "Je veux retourner un article."))
    gateway.wait_idle()
    address = reply_address(gateway.mails_to(CUSTOMER)[0])
    before = len(gateway.mails_to(CUSTOMER))
    told = len(gateway.mails_to("alice@shop.example"))
    gateway.send(mail(CUSTOMER, address, "Réponse automatique : absent", "Je suis absente jusqu'au 10.",
                      Auto_Submitted="auto-replied"))
    gateway.send(mail(CUSTOMER, address, "Out of Office: Retour", "I am away.", X_Autoreply="yes"))
    gateway.wait_idle()
    gateway.send(mail(CUSTOMER, address, "Absente du 3 au 10 : livrez après le 10 SVP", "Et en bleu, pas en rouge."))
    gateway.wait_idle()
    assert "Et en bleu, pas en rouge." in body_text(gateway.mails_to("alice@shop.example")[-1]), \
        "a reply with the customer's own token that only reads like an out-of-office is hers"
    told += 1
    gateway.send(mail("newsletter@shop-news.example", "support@shop.example", "Promo", "Soldes !",
                      Precedence="bulk", List_Id="<news.shop-news.example>"))
    gateway.send(mail("Nadia <nadia@client.example>", "support@shop.example",
                      "Absente du 3 au 10 : merci de livrer après", "Bonjour, livrez ma commande 88 après le 10."))
    gateway.send(mail("alice@shop.example", "support@shop.example", "Réponse automatique : absente", "#list",
                      Auto_Submitted="auto-replied"))
    gateway.wait_idle()
    assert len(gateway.mails_to(CUSTOMER)) == before and not gateway.mails_to("newsletter@shop-news.example") \
        and not gateway.mails_to("nadia@client.example"), "no robot is ever answered"
    alerts = [str(m["Subject"]) for m in gateway.mails_to("alice@shop.example")[told:]]
    assert len(alerts) == 2 and any("Promo" in a for a in alerts) and any("Absente" in a for a in alerts), \
        f"the team is told of the two, and no #list is answered to a robot: {alerts}"
    request = gateway.show(1)
    assert [c["text"] for c in request["comments"]][1:] == ["Et en bleu, pas en rouge."]
    assert [e["kind"] for e in request["events"]] == ["auto-replied", "auto-replied", "looked automatic"]
    assert [r["subject"] for r in gateway.requests()] == [
        "Réponse automatique : absente", "Absente du 3 au 10 : merci de livrer après", "Promo", "Retour"], \
        "the inbox shows every mail"
    promo, nadia = gateway.show(2), gateway.show(3)
    assert "automatic" in promo["labels"] and "automatic" in nadia["labels"]
    assert [e["detail"] for e in promo["events"] if e["kind"] == "automatic"][0].startswith(
        "opened by an automatic mail (bulk: ")
    assert "livrez ma commande 88" in nadia["comments"][0]["text"]


def _delivery_report(acknowledgment: Message, action: str, status: str, diagnostic: str) -> bytes:
    """What mx.gone.example writes back about the gateway's mail to paul@gone.example."""
    return f"""From: MAILER-DAEMON@mx.gone.example
To: support@shop.example
Subject: {"Undelivered Mail Returned to Sender" if action == "failed" else "Delayed Mail (still being retried)"}
Message-ID: <report-{action}@mx.gone.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system at host mx.gone.example. Your message could not be delivered{
    "." if action == "failed" else " for more than 4 hours. It will be retried until it is 5 days old."}

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.gone.example

Final-Recipient: rfc822; paul@gone.example
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {diagnostic}

--B
Content-Type: text/rfc822-headers

From: Boutique Test <support@shop.example>
To: paul@gone.example
Message-ID: {acknowledgment["Message-ID"]}
Subject: {acknowledgment["Subject"]}

--B--
""".replace("\n", "\r\n").encode()


def test_a_bounce_marks_the_address_failing_and_tells_the_coordinators(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.send(mail("Paul <paul@gone.example>", "support@shop.example", "Adresse", "Bonjour"))
    gateway.wait_idle()
    acknowledgment = gateway.mails_to("paul@gone.example")[0]
    report = _delivery_report(acknowledgment, "failed", "5.1.1",
                              "550 5.1.1 <paul@gone.example>: Recipient address rejected: User unknown")
    gateway.send(report, ["support@shop.example"], sender="")
    gateway.wait_idle()
    alert = gateway.mails_to("alice@shop.example")[-1]
    assert "paul@gone.example" in str(alert["Subject"])
    assert [e["kind"] for e in gateway.show(1)["events"]] == ["bounce"]
    before = len(gateway.mails_to("paul@gone.example"))
    gateway.send(mail("alice@shop.example", reply_address(gateway.mails_to("alice@shop.example")[0]),
                      "Re: Adresse", "Bonjour Paul"))
    gateway.wait_idle()
    assert len(gateway.mails_to("paul@gone.example")) == before, "no more mail to a failing address"
    assert len(gateway.requests()) == 1


@pytest.mark.parametrize("action, status, diagnostic", [
    ("delayed", "4.4.1", "connect to mx.gone.example[192.0.2.7]:25: Connection timed out"),
    ("failed", "4.2.2", "452 4.2.2 <paul@gone.example>: Mailbox full (retries ran out)"),
], ids=["delayed", "failed-for-now"])
def test_a_delay_or_a_temporary_failure_never_marks_the_address_failing(
        gateway: Gateway, action: str, status: str, diagnostic: str) -> None:
    """The server still trying, or one that gave up for a reason that may pass: Paul still gets mail."""
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.send(mail("Paul <paul@gone.example>", "support@shop.example", "Adresse", "Bonjour"))
    gateway.wait_idle()
    acknowledgment = gateway.mails_to("paul@gone.example")[0]
    alerts = len(gateway.mails_to("alice@shop.example"))
    gateway.send(_delivery_report(acknowledgment, action, status, diagnostic), ["support@shop.example"], sender="")
    gateway.wait_idle()
    assert len(gateway.mails_to("alice@shop.example")) == alerts, "no coordinator is alerted"
    events = gateway.show(1)["events"]
    assert [e["kind"] for e in events] == [f"delivery {action}"], "the request shows its mail is late"
    assert "paul@gone.example" in events[0]["detail"] and status in events[0]["detail"]
    before = len(gateway.mails_to("paul@gone.example"))
    gateway.send(mail("alice@shop.example", reply_address(gateway.mails_to("alice@shop.example")[0]),
                      "Re: Adresse", "Bonjour Paul"))
    gateway.wait_idle()
    assert len(gateway.mails_to("paul@gone.example")) == before + 1, "Paul is still written to"
    assert len(gateway.requests()) == 1


def test_a_malformed_message_is_kept_shown_and_replayable(gateway: Gateway) -> None:
    gateway.add_person("alice@shop.example", "coordinator")
    broken = (b"From: =?utf-8?q?Ren=C3=A9?= <rene@client.example>\r\nTo: support@shop.example\r\n"
              b"Subject: =?iso-8859-1?q?Probl=E8me?=\r\nContent-Type: multipart/mixed; boundary=\"nope\"\r\n\r\n"
              b"no boundary here at all \x92quoted\x93\r\n")
    gateway.send(broken, ["support@shop.example"], sender="rene@client.example")
    gateway.wait_idle()
    [request] = gateway.requests()
    assert request["subject"] == "Problème"
    alert = gateway.mails_to("alice@shop.example")[-1]
    assert "mal formé" in alert.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    replayed = gateway.cli("replay", "1", "--json").stdout
    assert '"status": "processed"' in replayed
    assert len(gateway.requests()) == 1, "replaying applies nothing twice"


def test_mail_to_one_address_is_limited_per_hour_so_robots_cannot_loop(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home", extra="mails_per_hour = 3")).start()
    try:
        gw.add_person("alice@shop.example", "coordinator")
        gw.send(mail(CUSTOMER, "support@shop.example", "Boucle", "Bonjour"))
        gw.wait_idle()
        alert = gw.mails_to("alice@shop.example")[0]
        for number in range(5):
            gw.send(mail("alice@shop.example", reply_address(alert), "Re: Boucle", f"Réponse {number}"))
        gw.wait_idle()
        assert len(gw.mails_to(CUSTOMER)) == 3
        assert "rate-limited" in [e["kind"] for e in gw.show(1)["events"]]
        assert len(gw.show(1)["comments"]) == 6, "every reply is kept even when no mail goes out"
    finally:
        assert gw.stop() == 0


@pytest.mark.parametrize("what", ["SMTP", "web"])
def test_a_taken_port_stops_the_start_with_a_clear_error(tmp_path: Path, what: str) -> None:
    gw = Gateway(write_home(tmp_path / "home"))
    port = gw.smtp_port if what == "SMTP" else gw.http_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run([*GATEWAY, "serve", "--smtp-port", str(gw.smtp_port), "--http-port", str(gw.http_port)],
                              cwd=gw.home, env=gw.env, capture_output=True, text=True, timeout=60)
        for other in {gw.smtp_port, gw.http_port} - {port}:
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", other)) != 0, "nothing left answering"
    assert done.returncode == 1
    assert f"gateway: {what} on 127.0.0.1:{port}:" in done.stderr and "Traceback" not in done.stderr


def test_serve_stops_with_an_error_if_one_of_its_smtp_listeners_dies(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home")).start()
    assert gw.process is not None
    try:
        spawned = gw.children()
        assert all(b"gateway.children" in Path(f"/proc/{c}/cmdline").read_bytes() for c in spawned), \
            "no other process beside them (multiprocessing's resource tracker is 13 MB)"
        listeners = [c for c in spawned if os.getpriority(os.PRIO_PROCESS, int(c)) < 19]  # the processor is at 19
        assert len(listeners) == LISTENERS and len(spawned) == LISTENERS + 1
        os.kill(int(listeners[0]), signal.SIGKILL)
        assert gw.process.wait(timeout=60) == 1
    finally:
        if gw.process.poll() is None:
            gw.kill()
    assert "the SMTP listener process ended by itself" in gw.log.read_text()


def test_a_forged_bounce_cannot_cut_a_customer_off(gateway: Gateway) -> None:
    """Anyone can write "550 5.1.1 paul@… User unknown" from MAILER-DAEMON. Only a report that quotes one
    of our mails to Paul marks Paul failing: one that quotes another's mail (Alice received it) does not."""
    gateway.add_person("alice@shop.example", "coordinator")
    gateway.send(mail("Paul <paul@gone.example>", "support@shop.example", "Adresse", "Bonjour"))
    gateway.wait_idle()
    someone_elses = gateway.mails_to("alice@shop.example")[0]
    forged = _delivery_report(someone_elses, "failed", "5.1.1", "550 5.1.1 <paul@gone.example>: User unknown")
    gateway.send(forged, ["support@shop.example"], sender="")
    gateway.wait_idle()
    assert "bounce" not in [e["kind"] for e in gateway.show(1)["events"]]
    before = len(gateway.mails_to("paul@gone.example"))
    gateway.send(mail("alice@shop.example", reply_address(someone_elses), "Re: Adresse", "Bonjour Paul"))
    gateway.wait_idle()
    assert len(gateway.mails_to("paul@gone.example")) == before + 1, "Paul is still written to"
    assert "not marked: the report quotes none of our mails to it" in gateway.log.read_text()
