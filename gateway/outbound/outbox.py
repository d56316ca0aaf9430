"""Sending outbox rows, with their attempts, errors and backoff recorded on each row."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from gateway.context import Context
from gateway.models import Outbox, utcnow
from gateway.outbound.transports import PermanentError, TransientError, transport_for

log = logging.getLogger("gateway.outbound")
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    """15 s, 30 s, 1 min, ... capped at one hour."""
    return timedelta(seconds=min(15 * 2 ** (attempts - 1), 3600))


def deliver_all(context: Context, outbox_ids: list[int]) -> list[int]:
    """Send the pending rows among ``outbox_ids`` in one transaction; returns the ids to retry later."""
    retry: list[int] = []
    if not outbox_ids:
        return retry
    with context.sessions.begin() as session:
        rows = session.scalars(select(Outbox).where(Outbox.id.in_(outbox_ids)).order_by(Outbox.id)
                               .with_for_update()).all()
        for row in rows:
            if row.status == "pending" and not _attempt(context, row):
                retry.append(row.id)
    return retry


def _attempt(context: Context, row: Outbox) -> bool:
    """One try at one row, recorded on it; False when it must be retried."""
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
