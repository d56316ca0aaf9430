"""The stored message file: one header line of envelope, then the raw bytes exactly as received.

The envelope line is an ``X-Gateway-Envelope: {json}`` header, so a stored file is still a
mail that any reader (``gateway parse``, a mail client) opens; ``read_message`` gives back
the bytes as they were received, without it.

A message is first written to ``<data>/incoming/`` by whoever received it, even a process
with no database (the SMTP listener), and flushed to disk: that is the moment it may be
acknowledged. Admission later gives it a row and moves it to ``<data>/raw/DAY/``. The file
keeps its envelope, so an ``incoming/`` file needs nothing else to be admitted after a
crash, and a raw file says on its own where it came from.

The listener writes into spares (``Spares``): files of zeros written and flushed ahead of
time, that a message overwrites in place. Flushing an overwrite needs no journal commit
of the file system, so it costs a fraction of a new file renamed into place and its folder
flushed, and it does not queue behind the other writers' commits.
The envelope line gives the message's length and CRC-32, so the zeros after it, and a
write that a crash cut short (never acknowledged), are told from a message. A spare is
named ``*.spare``, and ``*.eml`` once it holds a message.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gateway.clock import utcnow
from gateway.durable import create_files, fill_files
from gateway.runtime import lower_priority

log = logging.getLogger("gateway.smtp")

ENVELOPE_HEADER = b"X-Gateway-Envelope: "


class NotAMessage(ValueError):
    """A file of ``incoming/`` that holds no whole message: a spare, or a write a crash cut short."""


@dataclass(frozen=True)
class Envelope:
    """How a message reached us: the mailbox it is for and the SMTP (or IMAP) envelope."""

    source: str  # smtp, imap, import
    mailbox: str
    mail_from: str = ""
    rcpt_tos: tuple[str, ...] = ()
    received_at: datetime = field(default_factory=utcnow)  # naive UTC, as the database keeps it
    quiet: bool = False  # imported history (``gateway import --no-mail``): applied, mailing no one

    def stored(self, raw: bytes) -> bytes:
        """The file's content: the envelope line, with the message's length and CRC-32, then the message."""
        fields = {"source": self.source, "mailbox": self.mailbox, "mail_from": self.mail_from,
                  "rcpt_tos": list(self.rcpt_tos), "received_at": self.received_at.isoformat(),
                  "quiet": self.quiet, "length": len(raw), "crc32": zlib.crc32(raw)}
        return ENVELOPE_HEADER + json.dumps(fields).encode() + b"\r\n" + raw


def parse_stored(content: bytes) -> tuple[Envelope, bytes]:
    """The envelope and the message of a stored file's content, without what follows the message."""
    envelope, raw, _end = _parse_stored(content)
    return envelope, raw


def _parse_stored(content: bytes) -> tuple[Envelope, bytes, int]:
    line, _, rest = content.partition(b"\n")
    if not line.startswith(ENVELOPE_HEADER):
        raise NotAMessage(f"not a stored message: its first line is not {ENVELOPE_HEADER.decode()!r}")
    try:
        fields = json.loads(line.removeprefix(ENVELOPE_HEADER))
    except ValueError as error:
        raise NotAMessage(f"its envelope line is cut short: {error}") from error
    raw = rest[:fields["length"]]
    if len(raw) != fields["length"] or zlib.crc32(raw) != fields["crc32"]:
        raise NotAMessage("the message is cut short: its length or CRC-32 does not match its envelope")
    envelope = Envelope(source=fields["source"], mailbox=fields["mailbox"], mail_from=fields["mail_from"],
                        rcpt_tos=tuple(fields["rcpt_tos"]), received_at=datetime.fromisoformat(fields["received_at"]),
                        quiet=bool(fields.get("quiet", False)))
    return envelope, raw, len(line) + 1 + len(raw)


def incoming_folder(data_dir: Path) -> Path:
    return data_dir / "incoming"


def raw_folder(data_dir: Path) -> Path:
    return data_dir / "raw"


def write_incoming(data_dir: Path, messages: list[tuple[bytes, Envelope]],
                   spares: Spares | None = None) -> list[Path]:
    """Keep messages durably in ``incoming/`` (which must exist), together, in spares when there
    are; once this returns, each may be acknowledged."""
    folder = incoming_folder(data_dir)
    files: list[tuple[str, bytes, int | None]] = []
    for raw, envelope in messages:
        path, descriptor = (spares.take() if spares is not None else None) or (folder / f"{uuid.uuid4().hex}.eml",
                                                                                 None)
        files.append((str(path), envelope.stored(raw), descriptor))
    fill_files(files, str(folder))
    names = [Path(written).with_suffix(".eml") for written, _content, _descriptor in files]
    for (written, _content, descriptor), name in zip(files, names, strict=True):
        if descriptor is not None:  # the name says it holds a message now; a crash may lose it, the content is enough
            os.rename(written, name)
    return names


def read_message(path: Path) -> tuple[Envelope, bytes]:
    return parse_stored(path.read_bytes())


def read_received(path: Path) -> tuple[Envelope, bytes]:
    """``read_message`` for a file of ``incoming/``, cut to the message: the rest of a spare goes."""
    content = path.read_bytes()
    envelope, raw, end = _parse_stored(content)
    if len(content) > end:
        os.truncate(path, end)
    return envelope, raw


def waiting(data_dir: Path) -> list[Path]:
    """Files received but not admitted yet (a crash between the two), and spares, oldest first."""
    folder = incoming_folder(data_dir)
    if not folder.is_dir():
        return []
    return sorted([*folder.glob("*.eml"), *folder.glob("*.spare")], key=lambda p: (p.stat().st_mtime_ns, p.name))


class Spares:
    """Spares for one writer, made ahead and kept open by a thread of its own; ``take`` never waits."""

    BYTES = 16 * 1024  # nine mails in ten fit: a longer one extends its spare, at the cost of a journal commit
    COUNT = 256
    # Niceness steps of the thread making them, below the listener's loop: answering the clients
    # comes first, and 128 spares left are time enough to make more.
    STEPS = 10

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._ready: deque[tuple[Path, int]] = deque()
        self._wanted = threading.Event()
        self._wanted.set()
        self._closed = False
        self._maker = threading.Thread(target=self._make_forever, name="spares", daemon=True)
        self._maker.start()

    def close(self) -> None:
        """Remove the spares not taken (a crash leaves them to ``admission.admit_waiting``)."""
        self._closed = True
        self._wanted.set()
        self._maker.join(10)
        while self._ready:
            path, descriptor = self._ready.popleft()
            os.close(descriptor)
            path.unlink(missing_ok=True)

    def __len__(self) -> int:
        """Spares ready to take."""
        return len(self._ready)

    def take(self) -> tuple[Path, int] | None:
        """A spare and its open descriptor, or None when they went faster than they were made."""
        if len(self._ready) < self.COUNT // 2:
            self._wanted.set()
        try:
            return self._ready.popleft()
        except IndexError:
            return None

    def _make_forever(self) -> None:
        lower_priority(self.STEPS)
        zeros = bytes(self.BYTES)
        while self._wanted.wait() and not self._closed:
            self._wanted.clear()
            paths = [str(self.folder / f"{uuid.uuid4().hex}.spare") for _ in range(self.COUNT - len(self._ready))]
            try:
                descriptors = create_files([(path, zeros) for path in paths], str(self.folder))
            except OSError as error:  # messages go to new files meanwhile
                log.warning("could not make spare files in %s: %s", self.folder, error)
                continue
            self._ready.extend(zip(map(Path, paths), descriptors, strict=True))
