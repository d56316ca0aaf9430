"""Storing: a message is durable in incoming/ before any row exists; admission never loses nor doubles it."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import undefer

from gateway.context import Context, open_context
from gateway.intake.admission import admit, admit_waiting, read_raw, store
from gateway.intake.spool import Envelope, Spares, incoming_folder, raw_folder, read_message, write_incoming
from gateway.mail.parse import parse
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
        return list(session.scalars(select(Inbound).options(undefer(Inbound.raw)).order_by(Inbound.id)))


def test_the_file_keeps_the_envelope_and_the_exact_bytes(context: Context) -> None:
    envelope = Envelope("smtp", "support@shop.example", "a@client.example", ("support+tok@shop.example",))
    [path] = write_incoming(context.settings.data_dir, [(RAW, envelope)])
    assert read_message(path) == (envelope, RAW)
    whole = parse(path.read_bytes())
    assert (whole.subject, whole.text.strip()) == ("x", "Bonjour\n\nfin"), "a stored file is still a mail"


def test_a_file_left_in_incoming_by_a_crash_is_admitted_at_start(context: Context,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    data = context.settings.data_dir
    write_incoming(data, [(RAW, Envelope("smtp", "support@shop.example", "a@client.example",
                                         ("support@shop.example",)))])
    (incoming_folder(data) / "spare.spare").write_bytes(bytes(Spares.BYTES))
    cut = Envelope("smtp", "support@shop.example").stored(RAW)[:-5]
    (incoming_folder(data) / "cut-short.eml").write_bytes(cut + bytes(100))  # a crash mid-write, never acknowledged
    with caplog.at_level(logging.WARNING):
        [inbound_id] = admit_waiting(context)
    assert "cut-short.eml, never acknowledged: the message is cut short" in caplog.text
    assert "spare.spare" not in caplog.text
    [row] = _rows(context)
    assert (row.id, row.source, row.envelope_from, row.size) == (inbound_id, "smtp", "a@client.example", len(RAW))
    assert read_raw(context, row.raw, row.raw_path) == RAW
    assert list(incoming_folder(data).iterdir()) == [], "moved under raw/, the spare and the cut write removed"


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
    ids = [admitted.id for admitted in admit(context, paths)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    with context.sessions() as session:
        assert session.scalar(select(func.count(Inbound.id))) == 5
    assert [read_raw(context, row.raw, row.raw_path).split(b"\r\n")[2] for row in _rows(context)] == [
        f"Subject: {n}".encode() for n in range(5)]


def test_admission_numbers_messages_in_the_order_received_whatever_the_order_they_are_named_in(
        context: Context) -> None:
    received = datetime(2026, 12, 3, 20, 0)
    paths = write_incoming(context.settings.data_dir, [
        (RAW.replace(b"Subject: x", f"Subject: {n}".encode()),
         Envelope("smtp", "support@shop.example", received_at=received + timedelta(milliseconds=n))) for n in range(5)])
    ids = [admitted.id for admitted in admit(context, paths[::-1])]  # named by two listeners, the later one read first
    assert ids == sorted(ids, reverse=True), "the ids follow the paths given"
    assert [read_raw(context, row.raw, row.raw_path).split(b"\r\n")[2] for row in _rows(context)] == [
        f"Subject: {n}".encode() for n in range(5)]


def test_messages_overwrite_spares_made_ahead_and_keep_their_exact_bytes(context: Context) -> None:
    data = context.settings.data_dir
    spares = Spares(incoming_folder(data))
    deadline = time.monotonic() + 10
    while len(spares) < Spares.COUNT and time.monotonic() < deadline:
        time.sleep(0.01)
    made = {path.with_suffix(".eml") for path in incoming_folder(data).iterdir()}
    here = os.getpriority(os.PRIO_PROCESS, 0)
    assert os.getpriority(os.PRIO_PROCESS, spares._maker.native_id or 0) == min(19, here + Spares.STEPS), \
        "made below the priority of the loop that answers the clients"
    large = RAW + b"x" * (2 * Spares.BYTES)  # longer than a spare: the spare grows
    paths = write_incoming(data, [(RAW, Envelope("smtp", "support@shop.example")),
                                  (large, Envelope("smtp", "support@shop.example"))], spares)
    assert set(paths) <= made, "written into spares, not into new files"
    assert paths[0].stat().st_size == Spares.BYTES and [read_message(p)[1] for p in paths] == [RAW, large]
    rows = [admitted.id for admitted in admit(context, paths)]
    with context.sessions() as session:
        kept = [raw_folder(data) / session.get_one(Inbound, inbound_id).raw_path for inbound_id in rows]
    assert [read_message(path)[1] for path in kept] == [RAW, large]
    assert kept[0].stat().st_size < 1000, "the zeros after the message are cut on admission"
