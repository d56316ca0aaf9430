"""The dramatiq actors. They take ids, never objects, and find the database through the context."""

from __future__ import annotations

import dramatiq

from gateway.context import current
from gateway.inbound.process import process_safely
from gateway.outbound.outbox import MAX_ATTEMPTS, deliver


class DeliveryPostponed(Exception):
    """The transport asked to try again later; dramatiq's retries bring the message back."""


@dramatiq.actor(queue_name="inbound", max_retries=0)
def process_inbound(inbound_id: int) -> None:
    """Apply one stored message, then hand its notifications to ``send_mail`` (after the commit)."""
    outcome = process_safely(current(), inbound_id)
    for outbox_id in outcome.outbox_ids:
        send_mail.send(outbox_id)


@dramatiq.actor(queue_name="outbox", max_retries=MAX_ATTEMPTS, min_backoff=15_000, max_backoff=3_600_000,
                throws=())
def send_mail(outbox_id: int) -> None:
    if not deliver(current(), outbox_id):
        raise DeliveryPostponed(f"outbox {outbox_id}")
