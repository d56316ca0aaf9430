"""Money that arrives by itself: a bank statement's credits become the payments of the orders they name
(CONTRACT §10, ``gateway payments import``).

A credit names an order by ``#N`` in its remittance text, else by the one number in it that is an
order not yet paid, in the credit's currency. It is recorded once: the bank's entry id is the
payment's transaction id (provider ``bank``), and an entry seen before is skipped, so importing a
statement twice, or two overlapping ones, changes nothing more. A payment that makes the order
paid ends its prepayment deadlines, in the same transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.helpdesk import record_event
from gateway.orders import timeline
from gateway.orders.models import Order, Payment
from gateway.orders.money import format_amount
from gateway.payments.ledger import update_payment_status
from gateway.payments.statements import Credit

PROVIDER = "bank"
_TAGGED = re.compile(r"#\s?(\d{1,12})\b")
_NUMBER = re.compile(r"(?<![\d.,/-])(\d{1,12})(?![\d.,/-])")


@dataclass(frozen=True)
class Matched:
    credit: Credit
    order: int | None  # None: no order found
    outcome: str  # "recorded", "already recorded", or why it matched nothing


def _order_named(session: Session, credit: Credit) -> Order | None:
    tagged = _TAGGED.findall(credit.reference)
    if tagged:
        return session.get(Order, int(tagged[0]))
    candidates = [order for number in dict.fromkeys(_NUMBER.findall(credit.reference))
                  if (order := session.get(Order, int(number))) is not None
                  and order.currency == credit.currency and order.payment_status != "paid"]
    return candidates[0] if len(candidates) == 1 else None


def import_credits(session: Session, credits: list[Credit]) -> list[Matched]:
    """Record each credit on the order it names, once; what became of each, in the file's order."""
    results = []
    for credit in credits:
        if session.scalar(select(Payment.id).where(Payment.provider == PROVIDER,
                                                   Payment.transaction_id == credit.entry_id)) is not None:
            results.append(Matched(credit, None, "already recorded"))
            continue
        order = _order_named(session, credit)
        if order is None:
            results.append(Matched(credit, None, "names no order"))
            continue
        if order.currency != credit.currency:
            results.append(Matched(credit, order.number, f"in {credit.currency}, the order is in {order.currency}"))
            continue
        if order.request.status in ("declined", "cancelled"):
            results.append(Matched(credit, order.number, f"the order is {order.request.status}: refund it by hand"))
            continue
        order.payments.append(Payment(method="transfer", provider=PROVIDER, amount=credit.amount,
                                      currency=credit.currency, status="succeeded", transaction_id=credit.entry_id,
                                      comment=f"bank statement {credit.date}: {credit.reference}"[:2000]))
        update_payment_status(order)
        record_event(order.request, "payment", f"{format_amount(credit.amount)} {credit.currency} received by "
                     f"transfer ({credit.entry_id}); {order.payment_status}")
        if order.payment_status == "paid":
            timeline.paid(session, order)
        session.flush()
        results.append(Matched(credit, order.number, "recorded"))
    return results
