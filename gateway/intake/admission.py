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
from pathlib import Path

from sqlalchemy import insert, select

from gateway import queues
from gateway.context import Context
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
from gateway.models import Inbound
from gateway.transaction import writer

log = logging.getLogger("gateway.smtp")


def _received(path: Path) -> tuple[Path, Envelope, bytes, str]:
    """A file of ``incoming/``: its envelope, its raw bytes and its path under ``raw/``."""
    envelope, raw = read_received(path)
    return path, envelope, raw, f"{envelope.received_at:%Y-%m-%d}/{path.name}"


_ENVELOPE_FROM_LENGTH = 998  # the column; the SMTP edge refuses worse, an IMAP Return-Path may hold anything


def admit(context: Context, paths: list[Path], *, recovering: bool = False) -> list[int]:
    """Give each file of ``incoming/`` its row (one transaction), then move it under ``raw/``.

    The rows are numbered in the order the messages were received, whatever the order of
    ``paths``: messages are applied in that order. The ids returned follow ``paths``.
    ``recovering``: a crash may have come between the commit and the move, so a file whose
    row exists is only moved (fresh files from a running listener cannot have one).
    """
    found = [_received(path) for path in paths]
    with writer(context), context.sessions.begin() as session:
        known: dict[str, int] = {}
        if recovering and found:
            relatives = [relative for _path, _envelope, _raw, relative in found]
            known = {raw_path: inbound_id for raw_path, inbound_id in session.execute(
                select(Inbound.raw_path, Inbound.id).where(Inbound.raw_path.in_(relatives)))}
        rows = [{"source": envelope.source, "mailbox": envelope.mailbox,
                 "envelope_from": envelope.mail_from.replace("\x00", "")[:_ENVELOPE_FROM_LENGTH],
                 "envelope_to": json.dumps(list(envelope.rcpt_tos)), "raw_path": relative, "size": len(raw),
                 "received_at": envelope.received_at}
                for _path, envelope, raw, relative in sorted(found, key=lambda one: one[1].received_at)
                if relative not in known]
        ids = known
        if rows:  # a plain insert: the ORM's unit of work cost more than the rest of admission
            ids |= dict(session.execute(insert(Inbound).returning(Inbound.raw_path, Inbound.id), rows).all())
    folder = raw_folder(context.settings.data_dir)
    for day in {relative.split("/")[0] for _path, _envelope, _raw, relative in found}:
        (folder / day).mkdir(parents=True, exist_ok=True)
    for path, _envelope, _raw, relative in found:
        path.rename(folder / relative)
    return [ids[relative] for _path, _envelope, _raw, relative in found]


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
    return admit(context, received, recovering=True)


def store(context: Context, raw: bytes, *, source: str, mailbox: str,
          envelope_from: str = "", envelope_to: tuple[str, ...] = ()) -> int:
    """Keep the raw message and its envelope; returns the stored id. Does not enqueue."""
    return store_all(context, [(raw, Envelope(source, mailbox, envelope_from, envelope_to))])[0]


def store_all(context: Context, messages: list[tuple[bytes, Envelope]]) -> list[int]:
    """``store`` for several messages: written with one flush, admitted in one transaction."""
    data_dir = context.settings.data_dir
    incoming_folder(data_dir).mkdir(parents=True, exist_ok=True)
    return admit(context, write_incoming(data_dir, messages))


# Messages applied in one transaction, at most. Each transaction has its fixed costs (the writer's
# turn, two flushes, the reads of what the batch shares, the commit, the hand-over to the processor),
# shared by its messages. A longer one keeps the web waiting longer, and the processor's peak memory
# grows with it (bench/README.md, "Speed tricks").
PROCESS_TOGETHER = 20


def enqueue(inbound_ids: list[int]) -> None:
    """Processing, for messages admitted together: in one transaction, a few at a time."""
    for start in range(0, len(inbound_ids), PROCESS_TOGETHER):
        queues.process_messages(inbound_ids[start:start + PROCESS_TOGETHER])


def accept(context: Context, raw: bytes, *, source: str, mailbox: str,
           envelope_from: str = "", envelope_to: tuple[str, ...] = ()) -> int:
    """Store the message durably, then enqueue its processing."""
    inbound_id = store(context, raw, source=source, mailbox=mailbox,
                       envelope_from=envelope_from, envelope_to=envelope_to)
    enqueue([inbound_id])
    return inbound_id


def read_raw(context: Context, raw_path: str) -> bytes:
    """A stored message's bytes, by its ``inbound.raw_path``."""
    return read_message(raw_folder(context.settings.data_dir) / raw_path)[1]
