"""The dramatiq actors. They take ids, never objects, and find the database through the context."""

from __future__ import annotations

import dramatiq

from gateway.context import current
from gateway.inbound import processor
from gateway.orders.quote_page import follow_up
from gateway.outbound.outbox import MAX_ATTEMPTS, deliver_all
from gateway.transaction import transaction


class DeliveryPostponed(Exception):
    """The transport asked to try again later; dramatiq's retries bring the message back."""


@dramatiq.actor(queue_name="inbound", max_retries=0)
def process_inbound(inbound_ids: list[int]) -> None:
    """Apply stored messages (together when they can be), then hand their notifications to ``send_mail``
    (after the commit), together too."""
    outbox_ids = processor.apply(inbound_ids)
    if outbox_ids:
        send_mail.send(outbox_ids)


@dramatiq.actor(queue_name="inbound", max_retries=5, min_backoff=1_000)
def follow_up_quote(quote_id: int) -> None:
    """A customer's decision on a quote: the order's changes and the coordinators' mails, once."""
    context = current()
    with transaction(context, background=True) as (session, mailer):
        follow_up(session, context.settings, mailer, quote_id)


@dramatiq.actor(queue_name="outbox", max_retries=MAX_ATTEMPTS, min_backoff=15_000, max_backoff=3_600_000,
                throws=())
def send_mail(outbox_ids: list[int]) -> None:
    """Send the mails one change caused, together; rows already sent are skipped when retried."""
    retry = deliver_all(current(), outbox_ids)
    if retry:
        raise DeliveryPostponed(f"outbox {', '.join(map(str, retry))}")
