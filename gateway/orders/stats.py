"""Order statistics for ``gateway stats``.

On-quote orders confirmed without any quote are left out of the order statistics and
counted apart (the Blackbell rule: the customer never saw a clear price).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal
from statistics import median
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from gateway.models import Request
from gateway.orders.models import ZERO, Order
from gateway.orders.money import format_amount

CONFIRMED = ("confirmed", "shipped", "delivered", "completed")


def _first_answer(order: Order) -> datetime | None:
    answers = [c.created_at for c in order.request.comments
               if c.author_role == "coordinator" and c.visibility == "public"]
    return min(answers) if answers else None


def _hours(values: list[float]) -> float | None:
    return round(median(values) / 3600, 2) if values else None


def order_stats(session: Session, since: datetime | None = None) -> dict[str, Any]:
    """Orders by status, quote acceptance rate, median hours to first answer and to decision, revenue."""
    query = select(Order).join(Order.request).order_by(Order.request_id).options(
        selectinload(Order.quotes), selectinload(Order.payments),
        selectinload(Order.request).selectinload(Request.comments))
    if since is not None:
        query = query.where(Order.created_at >= since)
    orders = list(session.scalars(query))
    left_out = [o for o in orders if o.on_quote and not o.quotes and o.request.status in CONFIRMED]
    counted = [o for o in orders if o not in left_out]
    decided_quotes = [q for o in counted for q in o.quotes if q.status in ("accepted", "declined")]
    accepted = sum(1 for q in decided_quotes if q.status == "accepted")
    first_answers = [(answer - o.created_at).total_seconds() for o in counted
                     if (answer := _first_answer(o)) is not None]
    decisions = [(o.decided_at - o.created_at).total_seconds() for o in counted if o.decided_at is not None]
    refunded: dict[str, Decimal] = {}
    refunds = [p for o in counted for p in o.payments if p.status == "succeeded" and p.amount < ZERO]
    for refund in refunds:
        refunded[refund.currency] = refunded.get(refund.currency, ZERO) - refund.amount
    revenue: dict[str, Decimal] = {}
    for order in counted:
        if order.request.status in CONFIRMED:
            revenue[order.currency] = revenue.get(order.currency, ZERO) + order.total
    return {
        "since": since.date().isoformat() if since else None,
        "orders": len(counted),
        "by_status": dict(sorted(Counter(o.request.status for o in counted).items())),
        "quotes_sent": sum(len(o.quotes) for o in counted),
        "quotes_decided": len(decided_quotes),
        "quotes_accepted": accepted,
        "quote_acceptance_rate": round(accepted / len(decided_quotes), 4) if decided_quotes else None,
        "median_hours_to_first_answer": _hours(first_answers),
        "median_hours_to_decision": _hours(decisions),
        "revenue_confirmed": {currency: format_amount(amount) for currency, amount in sorted(revenue.items())},
        "on_quote_confirmed_without_quote": len(left_out),
        "cancelled": sum(1 for o in counted if o.request.status == "cancelled"),
        "refunds": len(refunds),
        "refunded": {currency: format_amount(amount) for currency, amount in sorted(refunded.items())},
    }
