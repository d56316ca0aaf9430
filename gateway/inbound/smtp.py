"""The SMTP edge: refuse at RCPT what is not ours, store at DATA, answer 250, enqueue. Nothing more.

Storing is blocking I/O (a file fsync and a database commit), so it runs in a thread
and the event loop keeps serving the other connections.
"""

from __future__ import annotations

import asyncio
import logging

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.context import Context
from gateway.inbound.accept import accept
from gateway.tokens import verify_reply_token

log = logging.getLogger("gateway.smtp")

OK = "250 OK"
UNKNOWN_RECIPIENT = "550 5.1.1 no such mailbox here"
FORGED_TOKEN = "550 5.7.1 this reply address is not valid (bad signature)"
TOO_BIG = "552 5.3.4 message exceeds the size limit of {limit} bytes"
STORAGE_FAILED = "451 4.3.0 could not store the message, try again later"


class IngressHandler:
    """aiosmtpd handler: ``handle_RCPT`` routes or refuses, ``handle_DATA`` stores then accepts."""

    def __init__(self, context: Context) -> None:
        self.context = context

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        settings = self.context.settings
        mailbox = settings.mailbox_for(address)
        if mailbox is None:
            log.info("RCPT %s refused: not a mailbox of %s", address, settings.domain)
            return UNKNOWN_RECIPIENT
        local = address.split("@", 1)[0]
        if "+" in local and verify_reply_token(settings.secret_key, local.split("+", 1)[1].lower()) is None:
            log.info("RCPT %s refused: token signature does not verify", address)
            return FORGED_TOKEN
        envelope.rcpt_tos.append(address)
        return OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        settings = self.context.settings
        raw = envelope.original_content or b""
        if len(raw) > settings.max_message_size:
            return TOO_BIG.format(limit=settings.max_message_size)
        mailbox = settings.mailbox_for(envelope.rcpt_tos[0])
        assert mailbox is not None  # RCPT let only our mailboxes through
        try:
            inbound_id = await asyncio.get_running_loop().run_in_executor(None, lambda: accept(
                self.context, raw, source="smtp", mailbox=mailbox.address,
                envelope_from=envelope.mail_from or "", envelope_to=tuple(envelope.rcpt_tos)))
        except Exception:
            log.exception("could not store a message from %s", envelope.mail_from)
            return STORAGE_FAILED
        return f"250 OK stored as {inbound_id}"


def start_smtp(context: Context, host: str, port: int) -> Controller:
    """A running SMTP server; aiosmtpd answers 552 itself past ``data_size_limit``."""
    limit = context.settings.max_message_size
    controller = Controller(IngressHandler(context), hostname=host, port=port, data_size_limit=limit,
                            enable_SMTPUTF8=True, decode_data=False)
    controller.start()
    return controller
