"""One message on its way through the pipeline, with the handles every step needs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from gateway.addresses import is_addr_spec
from gateway.commands.grammar import BadCommand
from gateway.mail.parse import ParsedMail
from gateway.models import Inbound, MessageRef, Person, Request
from gateway.notify import Mailer
from gateway.pipeline.thread import Thread
from gateway.settings import Mailbox, Settings


class CommandsRefused(Exception):
    """Some command lines of the mail are bad: nothing of the mail may apply."""

    def __init__(self, author: str, request: Request | None, bad: list[BadCommand]) -> None:
        super().__init__("; ".join(f"{b.line}: {b.reason}" for b in bad))
        self.author = author
        self.request_id = request.id if request else None
        self.bad = bad


@dataclass
class Known:
    """What applying messages looks up before it changes anything, read for a whole batch at once
    (``apply.look_up``): accounts by address (None: none yet), the messages' own Message-IDs stored
    before, and the requests of the stored Message-IDs their In-Reply-To and References name."""

    people: dict[str, Person | None]
    refs: dict[str, MessageRef]
    threads: dict[str, Request]
    batch: frozenset[str]  # the batch's own Message-IDs: a reply to one of them is threaded as it is applied
    # Requests opened in the last hour, by address: read at the batch's first new request, then counted
    # on as the batch opens more (``apply._opened_before``).
    opened: dict[str, int] = field(default_factory=dict)
    # Requests automatic mails opened in the last hour, by mailbox: read at the batch's first one, then
    # counted on as the batch opens more (``apply._announced``).
    automatic_opened: dict[str, int] = field(default_factory=dict)


@dataclass
class Incoming:
    """One message being applied: the transaction, the stored row, the parsed mail, its mailbox."""

    session: Session
    settings: Settings
    mailer: Mailer
    row: Inbound
    parsed: ParsedMail
    mailbox: Mailbox
    key: str  # what makes it apply once (see ``gateway.mail.parse.dedupe_key``)
    raw: bytes
    known: Known | None = None
    # What the steps find on the way (``apply.STEPS``), for the steps after them.
    seen: MessageRef | None = None  # its Message-ID, stored before
    thread: Thread | None = None
    person: Person | None = None  # the sender's account

    @property
    def threaded(self) -> Thread:
        """The thread, once the ``thread`` step found it."""
        assert self.thread is not None, "a step that needs the thread runs after the thread step"
        return self.thread

    @property
    def account(self) -> Person:
        assert self.person is not None, "a step that needs the account runs after the sender_account step"
        return self.person

    @property
    def envelope_to(self) -> list[str]:
        return self.row.recipients

    @property
    def sender(self) -> str:
        if self.parsed.sender:
            return self.parsed.sender.address
        return self.row.envelope_from.lower() if is_addr_spec(self.row.envelope_from) else ""
