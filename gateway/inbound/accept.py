"""The one door for inbound mail: SMTP, IMAP and ``gateway import`` all store through here.

The raw bytes reach the disk (written, flushed, fsynced, renamed) and the row is
committed before the caller acknowledges anything; processing is only enqueued.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from gateway.context import Context
from gateway.models import Inbound, utcnow


def raw_folder(data_dir: Path) -> Path:
    return data_dir / "raw"


def _write_durably(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    with temporary.open("wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.rename(path)


def store(context: Context, raw: bytes, *, source: str, mailbox: str,
          envelope_from: str = "", envelope_to: tuple[str, ...] = ()) -> int:
    """Keep the raw message and its envelope; returns the stored id. Does not enqueue."""
    day = utcnow().strftime("%Y-%m-%d")
    relative = Path(day) / f"{uuid.uuid4().hex}.eml"
    _write_durably(raw_folder(context.settings.data_dir) / relative, raw)
    with context.sessions.begin() as session:
        row = Inbound(source=source, mailbox=mailbox, envelope_from=envelope_from,
                      envelope_to=json.dumps(list(envelope_to)), raw_path=str(relative), size=len(raw))
        session.add(row)
        session.flush()
        return row.id


def accept(context: Context, raw: bytes, *, source: str, mailbox: str,
           envelope_from: str = "", envelope_to: tuple[str, ...] = ()) -> int:
    """Store the message durably, then enqueue its processing."""
    from gateway.tasks import process_inbound

    inbound_id = store(context, raw, source=source, mailbox=mailbox,
                       envelope_from=envelope_from, envelope_to=envelope_to)
    process_inbound.send(inbound_id)
    return inbound_id


def read_raw(context: Context, row: Inbound) -> bytes:
    return (raw_folder(context.settings.data_dir) / row.raw_path).read_bytes()
