"""Sending one outbox row, with its attempts, errors and backoff recorded on the row."""

from __future__ import annotations

import logging
from datetime import timedelta

from gateway.context import Context
from gateway.models import Outbox, utcnow
from gateway.outbound.transports import PermanentError, TransientError, transport_for

log = logging.getLogger("gateway.outbound")
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    """15 s, 30 s, 1 min, ... capped at one hour."""
    return timedelta(seconds=min(15 * 2 ** (attempts - 1), 3600))


def deliver(context: Context, outbox_id: int) -> bool:
    """Send one pending row; True when done (sent or given up), False when it must be retried."""
    with context.sessions.begin() as session:
        row = session.get(Outbox, outbox_id, with_for_update=True)
        if row is None or row.status != "pending":
            return True
        row.attempts += 1
        try:
            transport_for(context.settings).deliver(row.sender, row.recipient, row.raw)
        except TransientError as error:
            row.last_error = str(error)
            if row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                log.error("outbox %s to %s failed after %s attempts: %s", row.id, row.recipient, row.attempts, error)
                return True
            row.next_attempt_at = utcnow() + backoff(row.attempts)
            log.warning("outbox %s to %s: %s (attempt %s, retrying)", row.id, row.recipient, error, row.attempts)
            return False
        except PermanentError as error:
            row.status, row.last_error = "failed", str(error)
            log.error("outbox %s to %s refused: %s", row.id, row.recipient, error)
            return True
        row.status, row.sent_at, row.last_error = "sent", utcnow(), ""
        log.info("sent %s %s to %s", row.template, row.message_id, row.recipient)
        return True

