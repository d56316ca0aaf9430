"""Sending outbox rows, with their attempts, errors and backoff recorded on each row."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from gateway.clock import utcnow
from gateway.context import Context
from gateway.models import Outbox
from gateway.outbound.transports import PermanentError, TransientError, transport_for

log = logging.getLogger("gateway.outbound")
MAX_ATTEMPTS = 8


def backoff(attempts: int) -> timedelta:
    """15 s, 30 s, 1 min, ... capped at one hour."""
    return timedelta(seconds=min(15 * 2 ** (attempts - 1), 3600))


def deliver_all(context: Context, outbox_ids: list[int]) -> list[int]:
    """Send the pending rows among ``outbox_ids`` in one transaction; returns the ids to retry later.

    The mails sent, nearly always all of them, are marked with one statement; only a failure
    loads its row to record the error and the next attempt.
    """
    retry: list[int] = []
    if not outbox_ids:
        return retry
    with context.sessions.begin() as session:
        rows = session.execute(select(Outbox.id, Outbox.sender, Outbox.recipient, Outbox.raw, Outbox.template,
                                      Outbox.message_id)
                               .where(Outbox.id.in_(outbox_ids), Outbox.status == "pending").order_by(Outbox.id)
                               .with_for_update()).all()
        outcomes = transport_for(context.settings).deliver([(row.sender, row.recipient, row.raw) for row in rows])
        sent = [row for row, outcome in zip(rows, outcomes, strict=True) if outcome is None]
        if sent:
            session.execute(update(Outbox).where(Outbox.id.in_([row.id for row in sent]))
                            .values(status="sent", sent_at=utcnow(), last_error="", attempts=Outbox.attempts + 1))
        for row in sent:
            log.info("sent %s %s to %s", row.template, row.message_id, row.recipient)
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome is not None and not _record_failure(session.get_one(Outbox, row.id), outcome):
                retry.append(row.id)
    return retry


def _record_failure(row: Outbox, error: TransientError | PermanentError) -> bool:
    """One failed try at one row, recorded on it; False when it must be retried."""
    row.attempts += 1
    if isinstance(error, PermanentError):
        row.status, row.last_error = "failed", str(error)
        log.error("outbox %s to %s refused: %s", row.id, row.recipient, error)
        return True
    row.last_error = str(error)
    if row.attempts >= MAX_ATTEMPTS:
        row.status = "failed"
        log.error("outbox %s to %s failed after %s attempts: %s", row.id, row.recipient, row.attempts, error)
        return True
    row.next_attempt_at = utcnow() + backoff(row.attempts)
    log.warning("outbox %s to %s: %s (attempt %s, retrying)", row.id, row.recipient, error, row.attempts)
    return False
