"""One message on its way through the pipeline, with the handles every step needs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from gateway.addresses import is_addr_spec
from gateway.mail.parse import ParsedMail
from gateway.models import Inbound, MessageRef, Person
from gateway.notify import Mailer
from gateway.settings import Mailbox, Settings


@dataclass
class Known:
    """What applying messages looks up before it changes anything, read for a whole batch at once
    (``apply.look_up``): accounts by address (None: none yet) and stored references by Message-ID."""

    people: dict[str, Person | None]
    refs: dict[str, MessageRef]


@dataclass
class Incoming:
    session: Session
    settings: Settings
    mailer: Mailer
    row: Inbound
    parsed: ParsedMail
    mailbox: Mailbox
    key: str  # what makes it apply once (see ``process.dedupe_key``)
    raw: bytes
    known: Known | None = None

    @property
    def envelope_to(self) -> list[str]:
        return list(json.loads(self.row.envelope_to or "[]"))

    @property
    def sender(self) -> str:
        if self.parsed.sender:
            return self.parsed.sender.address
        return self.row.envelope_from.lower() if is_addr_spec(self.row.envelope_from) else ""
