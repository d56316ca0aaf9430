"""The one door for inbound mail: SMTP, IMAP and ``gateway import`` all store through here.

A message is acknowledged once its file is durable in ``incoming/`` (see ``spool``);
``admit`` then gives it its ``inbound`` row and moves the file under ``raw/``. The SMTP
listener, in its own process, only writes files; the serving process admits them in
batches. IMAP and import, in the serving process, do both at once with ``store``.
Processing is only enqueued, after admission.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from gateway import queues
from gateway.context import Context
from gateway.intake.conversation import conversations
from gateway.intake.spool import (
    Envelope,
    NotAMessage,
    incoming_folder,
    raw_folder,
    read_message,
    read_received,
    waiting,
    write_incoming,
)
from gateway.mail.parse import Heads, read_heads
from gateway.models import Inbound, IntakeNode, database_now
from gateway.writer import writer

log = logging.getLogger("gateway.smtp")


class _Received(NamedTuple):
    """A file of ``incoming/``: its envelope, its raw bytes, its path under ``raw/`` and the headers its
    conversation is read from (read with the file, before the writer's turn is taken)."""

    path: Path
    envelope: Envelope
    raw: bytes
    relative: str
    heads: Heads


def _received(path: Path) -> _Received:
    envelope, raw = read_received(path)
    return _Received(path, envelope, raw, f"{envelope.received_at:%Y-%m-%d}/{path.name}", read_heads(raw))


_ENVELOPE_FROM_LENGTH = 998  # the column; the SMTP edge refuses worse, an IMAP Return-Path may hold anything


class Admitted(NamedTuple):
    """A message given its row: its number, and its Message-ID for the log line that says so."""

    id: int
    message_id: str | None


def admit(context: Context, paths: list[Path], *, recovering: bool = False,
          watermark: tuple[str, datetime] | None = None) -> list[Admitted]:
    """Give each file of ``incoming/`` its row (one transaction), then move it under ``raw/``.

    The rows are numbered in the order the messages were received, whatever the order of
    ``paths``: messages are applied in that order. What is returned follows ``paths``.
    ``recovering``: a crash may have come between the commit and the move, so a file whose
    row exists is only moved (fresh files from a running listener cannot have one).
    On PostgreSQL the raw bytes go into the row, where every host reaches them, and the file goes.
    ``watermark``: this host's name and the time before which all it acknowledged is in ``paths``
    or admitted before (``mark_admitted``), written in the same transaction.
    """
    found = [_received(path) for path in paths]
    in_database = context.engine.dialect.name == "postgresql"
    with writer(context), context.sessions.begin() as session:
        known: dict[str, int] = {}
        if recovering and found:
            known = {raw_path: inbound_id for raw_path, inbound_id in session.execute(
                select(Inbound.raw_path, Inbound.id).where(Inbound.raw_path.in_([one.relative for one in found])))}
        new = [one for one in sorted(found, key=lambda one: one.envelope.received_at) if one.relative not in known]
        keyed = conversations(session, context.settings, [(one.envelope, one.heads) for one in new])
        rows = [{"source": one.envelope.source, "mailbox": one.envelope.mailbox,
                 "envelope_from": one.envelope.mail_from.replace("\x00", "")[:_ENVELOPE_FROM_LENGTH],
                 "envelope_to": json.dumps(list(one.envelope.rcpt_tos)), "raw_path": one.relative,
                 "size": len(one.raw), "received_at": one.envelope.received_at, "conversation": key.conversation,
                 "message_id": key.message_id, "raw": one.raw if in_database else None, "quiet": one.envelope.quiet}
                for one, key in zip(new, keyed, strict=True)]
        ids = known
        if rows:  # a plain insert: the ORM's unit of work cost more than the rest of admission
            ids |= dict(session.execute(insert(Inbound).returning(Inbound.raw_path, Inbound.id), rows).all())
        message_ids = {one.relative: key.message_id for one, key in zip(new, keyed, strict=True)}
        if watermark is not None and in_database:
            _mark(session, *watermark)
    if in_database:
        for one in found:
            one.path.unlink()
    else:
        folder = raw_folder(context.settings.data_dir)
        for day in {one.relative.split("/")[0] for one in found}:
            (folder / day).mkdir(parents=True, exist_ok=True)
        for one in found:
            one.path.rename(folder / one.relative)
    return [Admitted(ids[one.relative], message_ids.get(one.relative)) for one in found]


def mark_admitted(context: Context, node: str, watermark: datetime) -> None:
    """This host has admitted everything it acknowledged before ``watermark`` (``pipeline.claim``):
    written on PostgreSQL, where several hosts may take mail in; SQLite has one."""
    if context.engine.dialect.name == "postgresql":
        with context.sessions.begin() as session:
            _mark(session, node, watermark)


def _mark(session: Session, node: str, watermark: datetime) -> None:
    session.execute(pg_insert(IntakeNode).values(name=node, watermark=watermark, seen_at=database_now())
                    .on_conflict_do_update(index_elements=[IntakeNode.name],
                                           set_={"watermark": watermark, "seen_at": database_now()}))


def forget_node(context: Context, node: str) -> None:
    """This host stopped cleanly, with nothing acknowledged left to admit: it holds no one back."""
    if context.engine.dialect.name == "postgresql":
        with context.sessions.begin() as session:
            session.execute(delete(IntakeNode).where(IntakeNode.name == node))


def admit_waiting(context: Context) -> list[int]:
    """At start: admit what was received but not admitted before a crash or a stop; remove the
    spares and the writes a crash cut short (never acknowledged)."""
    received = []
    for path in waiting(context.settings.data_dir):
        try:
            read_message(path)
        except NotAMessage as why:
            if any(path.read_bytes()):
                log.warning("removed %s, never acknowledged: %s", path, why)
            path.unlink()
        else:
            received.append(path)
    return [admitted.id for admitted in admit(context, received, recovering=True)]


def store(context: Context, raw: bytes, *, source: str, mailbox: str,
          envelope_from: str = "", envelope_to: tuple[str, ...] = ()) -> int:
    """Keep the raw message and its envelope; returns the stored id. Does not enqueue."""
    return store_all(context, [(raw, Envelope(source, mailbox, envelope_from, envelope_to))])[0]


def store_all(context: Context, messages: list[tuple[bytes, Envelope]]) -> list[int]:
    """``store`` for several messages: written with one flush, admitted in one transaction."""
    data_dir = context.settings.data_dir
    incoming_folder(data_dir).mkdir(parents=True, exist_ok=True)
    return [admitted.id for admitted in admit(context, write_incoming(data_dir, messages))]


# Messages applied in one transaction, at most. Each transaction has its fixed costs (the writer's
# turn, two flushes, the reads of what the batch shares, the commit, the hand-over to the processor),
# shared by its messages. A longer one keeps the web waiting longer, and the processor's peak memory
# grows with it (bench/README.md, "Speed tricks").
PROCESS_TOGETHER = 20


def enqueue(inbound_ids: list[int]) -> None:
    """Tell the processors messages were admitted: one word for each batch they may apply, so that
    several batches of a large admission are applied side by side."""
    for start in range(0, len(inbound_ids), PROCESS_TOGETHER):
        queues.process_messages(inbound_ids[start:start + PROCESS_TOGETHER])


def accept(context: Context, raw: bytes, *, source: str, mailbox: str,
           envelope_from: str = "", envelope_to: tuple[str, ...] = ()) -> int:
    """Store the message durably, then enqueue its processing."""
    inbound_id = store(context, raw, source=source, mailbox=mailbox,
                       envelope_from=envelope_from, envelope_to=envelope_to)
    enqueue([inbound_id])
    return inbound_id


def read_raw(context: Context, raw: bytes | None, raw_path: str) -> bytes:
    """A stored message's bytes: those of its row (``inbound.raw``, PostgreSQL), else its file under ``raw/``."""
    return raw if raw is not None else read_message(raw_folder(context.settings.data_dir) / raw_path)[1]
