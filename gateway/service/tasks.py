"""What the background workers do: plain functions that take ids, never objects, and find the
database through the context. ``declare`` makes them dramatiq actors on a broker; the code that hands
them work names them (``gateway.queues``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dramatiq

from gateway import queues
from gateway.context import current
from gateway.orders.quote_page import follow_up
from gateway.outbound.outbox import MAX_ATTEMPTS, deliver_all
from gateway.service import processor
from gateway.transaction import transaction


class DeliveryPostponed(Exception):
    """The transport asked to try again later; dramatiq's retries bring the message back."""


def process_inbound(admitted: list[int]) -> None:
    """Messages were admitted (``admitted``, for the log): apply what may be applied now, whichever
    they are (``processor.drain``)."""
    processor.drain(current())


def follow_up_quote(quote_id: int) -> None:
    """A customer's decision on a quote: the order's changes and the coordinators' mails, once."""
    context = current()
    with transaction(context, background=True) as (session, mailer):
        follow_up(session, context.settings, mailer, quote_id)


def send_mail(outbox_ids: list[int]) -> None:
    """Send the mails one change caused, together; rows already sent are skipped when retried."""
    retry = deliver_all(current(), outbox_ids)
    if retry:
        raise DeliveryPostponed(f"outbox {', '.join(map(str, retry))}")


ACTORS: dict[str, tuple[Callable[..., None], dict[str, Any]]] = {
    # A drain goes on as long as mail comes in: dramatiq's time limit (10 minutes) would stop it by an
    # exception raised anywhere in it, between taking a claim and recording it too.
    queues.PROCESS_INBOUND: (process_inbound, {"queue_name": "inbound", "max_retries": 0,
                                               "time_limit": 7 * 24 * 3600 * 1000}),
    queues.FOLLOW_UP_QUOTE: (follow_up_quote, {"queue_name": "inbound", "max_retries": 5, "min_backoff": 1_000}),
    queues.SEND_MAIL: (send_mail, {"queue_name": "outbox", "max_retries": MAX_ATTEMPTS, "min_backoff": 15_000,
                                   "max_backoff": 3_600_000, "throws": ()}),
}


def declare(broker: dramatiq.Broker) -> None:
    """Every actor, on this broker (the one ``gateway.service.broker.configure`` made)."""
    for name, (function, options) in ACTORS.items():
        dramatiq.actor(actor_name=name, broker=broker, **options)(function)
