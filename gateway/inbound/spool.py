"""The stored message file: one header line of envelope, then the raw bytes exactly as received.

The envelope line is an ``X-Gateway-Envelope: {json}`` header, so a stored file is still a
mail that any reader (``gateway parse``, a mail client) opens; ``read_message`` gives back
the bytes as they were received, without it.

A message is first written to ``<data>/incoming/`` (written, flushed, fsynced, renamed into
place) by whoever received it, even a process with no database (the SMTP listener); that
is the moment it may be acknowledged. Admission later gives it a row and moves it to
``<data>/raw/DAY/``. The file keeps its envelope, so an ``incoming/`` file needs nothing
else to be admitted after a crash, and a raw file says on its own where it came from.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gateway.durable import write_files
from gateway.models import utcnow

ENVELOPE_HEADER = b"X-Gateway-Envelope: "


@dataclass(frozen=True)
class Envelope:
    """How a message reached us: the mailbox it is for and the SMTP (or IMAP) envelope."""

    source: str  # smtp, imap, import
    mailbox: str
    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    received_at: datetime = field(default_factory=utcnow)

    def as_line(self) -> bytes:
        fields = {"source": self.source, "mailbox": self.mailbox, "mail_from": self.mail_from,
                  "rcpt_tos": list(self.rcpt_tos), "received_at": self.received_at.isoformat()}
        return ENVELOPE_HEADER + json.dumps(fields).encode() + b"\r\n"

    @classmethod
    def from_line(cls, line: bytes) -> Envelope:
        if not line.startswith(ENVELOPE_HEADER):
            raise ValueError(f"not a stored message: its first line is not {ENVELOPE_HEADER.decode()!r}")
        fields = json.loads(line.removeprefix(ENVELOPE_HEADER))
        return cls(source=fields["source"], mailbox=fields["mailbox"], mail_from=fields["mail_from"],
                   rcpt_tos=tuple(fields["rcpt_tos"]), received_at=datetime.fromisoformat(fields["received_at"]))


def incoming_folder(data_dir: Path) -> Path:
    return data_dir / "incoming"


def raw_folder(data_dir: Path) -> Path:
    return data_dir / "raw"


def write_incoming(data_dir: Path, messages: list[tuple[bytes, Envelope]]) -> list[Path]:
    """Keep messages durably in ``incoming/`` (which must exist), together; once this returns,
    each may be acknowledged."""
    folder = str(incoming_folder(data_dir))
    names = [os.path.join(folder, uuid.uuid4().hex) for _ in messages]
    write_files([(name + ".tmp", name + ".eml", envelope.as_line() + raw)
                 for name, (raw, envelope) in zip(names, messages, strict=True)], folder)
    return [Path(name + ".eml") for name in names]


def read_message(path: Path) -> tuple[Envelope, bytes]:
    content = path.read_bytes()
    line, _, raw = content.partition(b"\n")
    return Envelope.from_line(line), raw


def waiting(data_dir: Path, suffix: str = ".eml") -> list[Path]:
    """Files received but not admitted yet (a crash between the two), oldest first."""
    folder = incoming_folder(data_dir)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"*{suffix}"), key=lambda p: (p.stat().st_mtime_ns, p.name))
