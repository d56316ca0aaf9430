"""Where outgoing mail goes: an SMTP relay, or a Maildir under ``<data>/outbox`` when none is set.

A transport takes the mails of one change, the exact bytes of each, and says what became
of each: delivered (``None``), ``TransientError`` (try again later) or ``PermanentError``.
"""

from __future__ import annotations

import itertools
import os
import smtplib
import socket
import time
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from gateway.durable import write_files
from gateway.settings import Relay, Settings


class TransientError(Exception):
    """Delivery failed for now (relay down, 4xx): try again later."""


class PermanentError(Exception):
    """Delivery can never succeed (5xx from the relay)."""


Outgoing = tuple[str, str, bytes]  # sender, recipient, the exact bytes
Outcome = TransientError | PermanentError | None


class Transport(Protocol):
    def deliver(self, mails: list[Outgoing]) -> list[Outcome]: ...


class MaildirTransport:
    """Each mail written as one file, in ``tmp/`` then renamed into ``new/``, as a Maildir does, by
    ``durable.write_files`` (a batch's files flushed together) rather than ``mailbox.Maildir.add``
    (one at a time, through Python's file objects).
    """

    def __init__(self, path: Path) -> None:
        for folder in ("tmp", "new", "cur"):  # several workers may create it at once
            (path / folder).mkdir(parents=True, exist_ok=True)
        self.tmp, self.new = str(path / "tmp"), str(path / "new")
        self._serial = itertools.count(1)
        self._suffix = f"{os.getpid()}_{{}}.{socket.gethostname().replace('/', '_').replace(':', '_')}"

    def deliver(self, mails: list[Outgoing]) -> list[Outcome]:
        """All in one go: the files of one change share their flush to disk."""
        names = [f"{time.time_ns() // 1000}.{self._suffix.format(next(self._serial))}" for _mail in mails]
        try:
            write_files([(os.path.join(self.tmp, name), os.path.join(self.new, name), raw)
                         for name, (_sender, _recipient, raw) in zip(names, mails, strict=True)], self.new)
        except OSError as error:
            return [TransientError(f"{self.new}: {error}") for _mail in mails]
        return [None for _mail in mails]


class RelayTransport:
    """Hands each mail to the configured SMTP relay."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def deliver(self, mails: list[Outgoing]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for sender, recipient, raw in mails:
            try:
                self._send(sender, recipient, raw)
            except (TransientError, PermanentError) as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    def _send(self, sender: str, recipient: str, raw: bytes) -> None:
        try:
            with smtplib.SMTP(self.relay.host, self.relay.port, timeout=30) as client:
                if self.relay.starttls:
                    client.starttls()
                if self.relay.user:
                    client.login(self.relay.user, self.relay.password)
                # an internationalised address, in the envelope and in To, needs the relay's SMTPUTF8
                client.sendmail(sender, [recipient], raw, mail_options=[] if recipient.isascii() else ["SMTPUTF8"])
        except smtplib.SMTPResponseException as error:
            if 500 <= error.smtp_code < 600:
                raise PermanentError(f"{error.smtp_code} {error.smtp_error!r}") from error
            raise TransientError(f"{error.smtp_code} {error.smtp_error!r}") from error
        except smtplib.SMTPRecipientsRefused as error:
            code, text = next(iter(error.recipients.values()))
            reason = f"{code} {text.decode('utf-8', 'replace')}"
            raise (PermanentError(reason) if 500 <= code < 600 else TransientError(reason)) from error
        except (OSError, smtplib.SMTPException) as error:
            raise TransientError(str(error) or type(error).__name__) from error


def outbox_folder(data_dir: Path) -> Path:
    return data_dir / "outbox"


@lru_cache(maxsize=4)
def transport_for(settings: Settings) -> Transport:
    if settings.relay is not None:
        return RelayTransport(settings.relay)
    return MaildirTransport(outbox_folder(settings.data_dir))
