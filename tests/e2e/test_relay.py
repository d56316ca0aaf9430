"""Outgoing mail through a real SMTP relay on loopback, and what happens when it refuses."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import Gateway, free_port, mail, write_home

from gateway.context import open_context
from gateway.models import Outbox
from gateway.outbound.outbox import deliver_all
from gateway.settings import load


class Relay:
    """An SMTP relay that keeps what it is given and refuses one address for good."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address.startswith("refused@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler, port = Relay(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    yield handler, port
    controller.stop()


def test_mail_goes_through_the_relay_and_a_refusal_is_recorded(tmp_path: Path, relay: tuple[Relay, int]) -> None:
    handler, port = relay
    gw = Gateway(write_home(tmp_path / "home", sections=f"[relay]\nhost = \"127.0.0.1\"\nport = {port}\n")).start()
    try:
        gw.add_person("alice@shop.example", "coordinator")
        gw.send(mail("client@client.example", "support@shop.example", "Relais", "Bonjour"))
        gw.send(mail("refused@client.example", "support@shop.example", "Refus", "Bonjour"))
        deadline = time.monotonic() + 30
        while len(handler.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        gw.wait_idle()
        recipients = sorted(rcpt for _, rcpts, _ in handler.received for rcpt in rcpts)
        assert recipients == ["alice@shop.example", "alice@shop.example", "client@client.example"]
        assert all(sender == "support@shop.example" for sender, _, _ in handler.received)
        assert not (gw.data / "outbox").exists(), "with a relay nothing is written to the Maildir"
        assert gw.count("SELECT count(*) FROM outbox WHERE status = 'failed' AND recipient = 'refused@client.example'"
                        " AND last_error LIKE '550%'") == 1
    finally:
        assert gw.stop() == 0


def test_an_internationalised_address_is_relayed_with_smtputf8_and_written_as_it_is(
        tmp_path: Path, relay: tuple[Relay, int]) -> None:
    handler, port = relay
    gw = Gateway(write_home(tmp_path / "home", sections=f"[relay]\nhost = \"127.0.0.1\"\nport = {port}\n")).start()
    try:
        gw.send(mail("Jérôme <jérôme@client.example>", "support@shop.example", "Été", "Bonjour"))
        deadline = time.monotonic() + 30
        while not handler.received and time.monotonic() < deadline:
            time.sleep(0.05)
        gw.wait_idle()
        [(_sender, recipients, raw)] = handler.received
        assert recipients == ["jérôme@client.example"]
        assert "\r\nTo: jérôme@client.example\r\n".encode() in raw
    finally:
        assert gw.stop() == 0


def test_a_relay_that_does_not_answer_is_retried_later(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_home(tmp_path / "home", sections=f"[relay]\nhost = \"127.0.0.1\"\nport = {port}\n")
    context = open_context(load(str(config)))
    with context.sessions.begin() as session:
        row = Outbox(sender="support@shop.example", recipient="x@client.example", template="t",
                     message_id="<t@shop.example>", raw=b"Subject: t\r\n\r\nt\r\n", status="pending")
        session.add(row)
    assert deliver_all(context, [row.id]) == [row.id], "to be retried later"
    with context.sessions() as session:
        stored = session.get(Outbox, row.id)
        assert stored is not None
        assert (stored.status, stored.attempts) == ("pending", 1)
        assert stored.next_attempt_at is not None and stored.last_error
    context.engine.dispose()


def test_a_relay_down_for_a_while_gets_every_mail_once_when_it_is_back(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there yet
    gw = Gateway(write_home(tmp_path / "home", sections=f"[relay]\nhost = \"127.0.0.1\"\nport = {port}\n")).start()
    controller = None
    try:
        gw.add_person("alice@shop.example", "coordinator")
        gw.send(mail("client@client.example", "support@shop.example", "Pendant la panne", "Bonjour"))
        deadline = time.monotonic() + 30
        while gw.count("SELECT count(*) FROM outbox WHERE attempts >= 1 AND status = 'pending'") < 2:
            assert time.monotonic() < deadline, "the mails were never tried"
            time.sleep(0.2)
        handler = Relay()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        deadline = time.monotonic() + 90  # the first retry comes 15 s after the first try, give or take
        while gw.count("SELECT count(*) FROM outbox WHERE status = 'sent'") < 2:
            assert time.monotonic() < deadline, "the mails were not sent once the relay was back"
            time.sleep(0.2)
        time.sleep(1)
        received = sorted(rcpt for _sender, rcpts, _raw in handler.received for rcpt in rcpts)
        assert received == ["alice@shop.example", "client@client.example"], "each mail once"
        assert gw.count("SELECT count(*) FROM outbox WHERE status != 'sent'") == 0
    finally:
        if controller is not None:
            controller.stop()
        assert gw.stop() == 0
