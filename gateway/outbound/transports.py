"""Where outgoing mail goes: an SMTP relay, or a Maildir under ``<data>/outbox`` when none is set.

A transport takes the exact bytes to send; raising ``TransientError`` asks for a retry later.
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


class Transport(Protocol):
    def deliver(self, sender: str, recipient: str, raw: bytes) -> None: ...


class MaildirTransport:
    """Each mail written as one file, in ``tmp/`` then renamed into ``new/``, as a Maildir does.

    ``mailbox.Maildir.add`` took 0.83 ms of CPU per mail here, ``write_files`` 0.22 ms, most of
    it the fsync.
    """

    def __init__(self, path: Path) -> None:
        for folder in ("tmp", "new", "cur"):  # several workers may create it at once
            (path / folder).mkdir(parents=True, exist_ok=True)
        self.tmp, self.new = str(path / "tmp"), str(path / "new")
        self._serial = itertools.count(1)
        self._suffix = f"{os.getpid()}_{{}}.{socket.gethostname().replace('/', '_').replace(':', '_')}"

    def deliver(self, sender: str, recipient: str, raw: bytes) -> None:
        name = f"{time.time_ns() // 1000}.{self._suffix.format(next(self._serial))}"
        write_files([(os.path.join(self.tmp, name), os.path.join(self.new, name), raw)], self.new)


class RelayTransport:
    """Hands each mail to the configured SMTP relay."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def deliver(self, sender: str, recipient: str, raw: bytes) -> None:
        try:
            with smtplib.SMTP(self.relay.host, self.relay.port, timeout=30) as client:
                if self.relay.starttls:
                    client.starttls()
                if self.relay.user:
                    client.login(self.relay.user, self.relay.password)
                client.sendmail(sender, [recipient], raw)
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
