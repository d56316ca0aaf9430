"""Sending outbox rows, with their attempts, errors and backoff recorded on each row."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select

from gateway.context import Context
from gateway.models import Outbox, utcnow
from gateway.outbound.transports import Outcome, PermanentError, TransientError, transport_for

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
        rows = [row for row in session.scalars(select(Outbox).where(Outbox.id.in_(outbox_ids)).order_by(Outbox.id)
                                               .with_for_update()) if row.status == "pending"]
        outcomes = transport_for(context.settings).deliver([(row.sender, row.recipient, row.raw) for row in rows])
        for row, outcome in zip(rows, outcomes, strict=True):
            if not _record(row, outcome):
                retry.append(row.id)
    return retry


def _record(row: Outbox, outcome: Outcome) -> bool:
    """One try at one row, recorded on it; False when it must be retried."""
    row.attempts += 1
    if isinstance(outcome, TransientError):
        row.last_error = str(outcome)
        if row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
            log.error("outbox %s to %s failed after %s attempts: %s", row.id, row.recipient, row.attempts, outcome)
            return True
        row.next_attempt_at = utcnow() + backoff(row.attempts)
        log.warning("outbox %s to %s: %s (attempt %s, retrying)", row.id, row.recipient, outcome, row.attempts)
        return False
    if isinstance(outcome, PermanentError):
        row.status, row.last_error = "failed", str(outcome)
        log.error("outbox %s to %s refused: %s", row.id, row.recipient, outcome)
        return True
    row.status, row.sent_at, row.last_error = "sent", utcnow(), ""
    log.info("sent %s %s to %s", row.template, row.message_id, row.recipient)
    return True
