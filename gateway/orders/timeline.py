"""When an order's deadlines start and end (CONTRACT §10): the changes of its life write them.

Each function runs in the transaction of the change it follows (``gateway.deadlines``); what the
sweep does once one is due is in ``gateway.orders.due``.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from gateway.deadlines import schedule, void
from gateway.orders.models import Order
from gateway.settings import OrderTimes, Settings

ACCEPTANCE = "acceptance"  # not confirmed in time: cancelled, refunded
DEADLINE_KINDS = (ACCEPTANCE,)


def times_of(settings: Settings, order: Order) -> OrderTimes:
    """The deadlines of the order's mailbox (none when the mailbox is gone from the configuration)."""
    mailbox = settings.mailbox_for(order.request.mailbox)
    return mailbox.times if mailbox is not None else OrderTimes()


def placed(session: Session, settings: Settings, order: Order) -> None:
    """A new order: its seller has ``acceptance_hours`` to confirm it."""
    hours = times_of(settings, order).acceptance_hours
    if hours:
        schedule(session, order.request, ACCEPTANCE, order.created_at + timedelta(hours=hours))


def decided(session: Session, order: Order, how: str) -> None:
    """Confirmed or declined: the acceptance window is over."""
    void(session, order.request, [ACCEPTANCE], how)


def ended(session: Session, order: Order, how: str) -> None:
    """Cancelled or completed: nothing more is due."""
    void(session, order.request, DEADLINE_KINDS, how)
