"""Processing one stored message: failures are kept and replayable, replays apply nothing twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.context import Context, open_context
from gateway.inbound.accept import store
from gateway.inbound.process import process, process_safely
from gateway.inbound.spool import raw_folder
from gateway.models import Inbound
from gateway.settings import Mailbox, Settings

RAW = b"From: a@client.example\r\nTo: support@shop.example\r\nSubject: x\r\nMessage-ID: <p1@c>\r\n\r\nBonjour\r\n"


@pytest.fixture
def context(tmp_path: Path) -> Context:
    return open_context(Settings(home=tmp_path, data_dir=tmp_path / "var",
                                 mailboxes=(Mailbox("support@shop.example"),)))


def test_a_message_that_cannot_be_processed_is_kept_failed_and_replays_later(
        context: Context, caplog: pytest.LogCaptureFixture) -> None:
    inbound_id = store(context, RAW, source="smtp", mailbox="support@shop.example")
    with context.sessions() as session:
        row = session.get(Inbound, inbound_id)
        assert row is not None
        path = raw_folder(context.settings.data_dir) / row.raw_path
    kept = path.read_bytes()
    path.unlink()
    outcome = process_safely(context, inbound_id)
    assert outcome.status == "failed" and "FileNotFoundError" in outcome.decision
    assert f"message {inbound_id} failed" in caplog.text and f"gateway replay {inbound_id}" in caplog.text
    path.write_bytes(kept)
    with context.sessions.begin() as session:
        session.get(Inbound, inbound_id).status = "pending"  # type: ignore[union-attr]
    assert process(context, inbound_id).status == "processed"
    assert process(context, inbound_id).status == "processed", "a second run changes nothing"


def test_the_same_message_stored_twice_applies_once(context: Context) -> None:
    first = store(context, RAW, source="smtp", mailbox="support@shop.example")
    second = store(context, b"Received: from relay\r\n" + RAW, source="imap", mailbox="support@shop.example")
    assert process(context, first).status == "processed"
    duplicate = process(context, second)
    assert duplicate.status == "duplicate" and "<p1@c>" in duplicate.decision
