"""Storing: a message is durable in incoming/ before any row exists; admission never loses nor doubles it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.context import Context, open_context
from gateway.inbound.accept import admit, admit_waiting, read_raw, store
from gateway.inbound.parse import parse
from gateway.inbound.spool import Envelope, incoming_folder, raw_folder, read_message, write_incoming
from gateway.models import Inbound
from gateway.settings import Mailbox, Settings

RAW = b"From: a@client.example\r\nTo: support@shop.example\r\nSubject: x\r\n\r\nBonjour\n\nfin\r\n"


@pytest.fixture
def context(tmp_path: Path) -> Context:
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var",
                                    mailboxes=(Mailbox("support@shop.example"),)))
    incoming_folder(context.settings.data_dir).mkdir(parents=True)
    return context


def _rows(context: Context) -> list[Inbound]:
    with context.sessions() as session:
        return list(session.scalars(select(Inbound).order_by(Inbound.id)))


def test_the_file_keeps_the_envelope_and_the_exact_bytes(context: Context) -> None:
    envelope = Envelope("smtp", "support@shop.example", "a@client.example", ("support+tok@shop.example",))
    [path] = write_incoming(context.settings.data_dir, [(RAW, envelope)])
    assert read_message(path) == (envelope, RAW)
    assert not list(path.parent.glob("*.tmp"))
    whole = parse(path.read_bytes())
    assert (whole.subject, whole.text.strip()) == ("x", "Bonjour\n\nfin"), "a stored file is still a mail"


def test_a_file_left_in_incoming_by_a_crash_is_admitted_at_start(context: Context) -> None:
    data = context.settings.data_dir
    write_incoming(data, [(RAW, Envelope("smtp", "support@shop.example", "a@client.example",
                                         ("support@shop.example",)))])
    (incoming_folder(data) / "half-written.tmp").write_bytes(b"never acknowledged")
    [inbound_id] = admit_waiting(context)
    [row] = _rows(context)
    assert (row.id, row.source, row.envelope_from, row.size) == (inbound_id, "smtp", "a@client.example", len(RAW))
    assert read_raw(context, row) == RAW
    assert list(incoming_folder(data).iterdir()) == [], "moved under raw/, the partial write removed"


def test_a_file_admitted_but_not_moved_before_a_crash_is_moved_not_admitted_twice(context: Context) -> None:
    data = context.settings.data_dir
    inbound_id = store(context, RAW, source="imap", mailbox="support@shop.example")
    [row] = _rows(context)
    kept = raw_folder(data) / row.raw_path
    kept.rename(incoming_folder(data) / kept.name)  # as if the process died between the commit and the move
    assert admit_waiting(context) == [inbound_id]
    assert len(_rows(context)) == 1 and kept.exists()


def test_admitting_a_batch_keeps_the_order_received(context: Context) -> None:
    data = context.settings.data_dir
    paths = write_incoming(data, [(RAW.replace(b"Subject: x", f"Subject: {n}".encode()),
                                   Envelope("smtp", "support@shop.example")) for n in range(5)])
    ids = admit(context, paths)
    assert ids == sorted(ids) and len(set(ids)) == 5
    with context.sessions() as session:
        assert session.scalar(select(func.count(Inbound.id))) == 5
    assert [read_raw(context, row).split(b"\r\n")[2] for row in _rows(context)] == [
        f"Subject: {n}".encode() for n in range(5)]
