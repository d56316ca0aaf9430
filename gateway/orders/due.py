"""What the sweep does when an order's deadline comes (CONTRACT §10), one handler per kind.

A handler runs in the transaction that marks its deadline done (``gateway.deadlines.run_due``)
and says what it did. A deadline whose order moved on without voiding it does nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.deadlines import Handler
from gateway.models import Deadline
from gateway.orders.lifecycle import OPEN, cancel_order
from gateway.orders.models import Order
from gateway.orders.money import format_amount
from gateway.orders.timeline import ACCEPTANCE, times_of
from gateway.outbound.notify import Mailer
from gateway.settings import Settings

SWEEP = "the gateway"  # the author of what a deadline does, in events and mails


def _not_accepted(session: Session, settings: Settings, mailer: Mailer, deadline: Deadline) -> str:
    order = session.get_one(Order, deadline.request_id)
    if order.request.status not in OPEN:
        return f"nothing to do: the order is {order.request.status}"
    hours = times_of(settings, order).acceptance_hours
    reason = f"not accepted within {hours:g} hours"
    done = cancel_order(settings, mailer, order, SWEEP, reason)
    refunded = sum(-refund.amount for refund in done.refunded)
    return f"cancelled ({reason})" + (f", {format_amount(refunded)} {order.currency} refunded" if refunded else "")


HANDLERS: dict[str, Handler] = {
    ACCEPTANCE: _not_accepted,
}
