"""Work handed to the background, by the name of the actor that does it.

The actors are declared in ``gateway.service.tasks``, on the broker that ``gateway.service.broker.configure`` made,
and they call into the pipeline, the quote page and the outbox. The code that hands them work (an
admission, a transaction's commit, a click on the quote page, the sweep) sits below them, so it
names them here instead of importing them: imports point one way. Handing work before ``configure``
ran is an error (dramatiq's ``ActorNotFound``), as it should be: there is nobody to do it.
"""

from __future__ import annotations

import dramatiq

PROCESS_INBOUND, FOLLOW_UP_QUOTE, SEND_MAIL = "process_inbound", "follow_up_quote", "send_mail"


def _send(actor: str, *args: object) -> None:
    dramatiq.get_broker().get_actor(actor).send(*args)


def process_messages(inbound_ids: list[int]) -> None:
    """These stored messages were admitted: a processor applies what may be applied now
    (``tasks.process_inbound``), these or any others, each conversation in order."""
    _send(PROCESS_INBOUND, inbound_ids)


def follow_up_quote(quote_id: int) -> None:
    """Follow a customer's decision on a quote up: ``tasks.follow_up_quote``."""
    _send(FOLLOW_UP_QUOTE, quote_id)


def send_mail(outbox_ids: list[int]) -> None:
    """Send these outbox rows, written by one committed change: ``tasks.send_mail``."""
    _send(SEND_MAIL, outbox_ids)
