"""Orders as plain data (CONTRACT §7): what ``gateway requests show --json`` adds for an order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import Deadline, Request
from gateway.orders.card import ensure_order
from gateway.orders.models import Order
from gateway.orders.money import format_amount


def _time(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "number": order.number,
        "status": order.request.status,
        "payment_method": order.payment_method,
        "payment_status": order.payment_status,
        "currency": order.currency,
        "discount": format_amount(order.discount),
        "total": format_amount(order.total),
        "amount_paid": format_amount(order.amount_paid),
        "items": [{"sku": item.product.sku if item.product else None, "offer": item.offer,
                   "description": item.description, "quantity": item.quantity,
                   "unit_price": format_amount(item.unit_price), "amount": format_amount(item.amount)}
                  for item in order.items],
        "on_quote": order.on_quote,
        "source": order.source,
        "plan": order.plan,
        "tags": list(order.tags),
        "tracking": order.tracking,
        "customer": order.customer.email,
        "manager": order.manager.email if order.manager else None,
        "due_at": _time(order.due_at),
        "late": order.late,
        "delivered_at": _time(order.delivered_at),
        "review": ({"rating": order.review_rating, "text": order.review_text} if order.reviewed_at else None),
        "cancellation": ({"requested_by": order.cancellation_by, "reason": order.cancellation_reason,
                          "status": order.cancellation_status} if order.cancellation_status else None),
        "revision": ({"reason": order.revision_reason, "status": order.revision_status}
                     if order.revision_status else None),
        "subscription": order.subscription_id,
    }


def order_detail(session: Session, request: Request) -> dict[str, Any] | None:
    """``{"order": ..., "quotes": [...], "payments": [...]}`` for an order request, None for a helpdesk one.

    Amounts are decimal strings; quotes and payments oldest first. A mail-created order
    whose card was never written gets it now (flushed; the caller's commit keeps it).
    """
    if request.kind != "order":
        return None
    order = ensure_order(session, request)
    summary = order_summary(order)
    summary["deadlines"] = [{"kind": d.kind, "due_at": _time(d.due_at), "state": d.state}
                            for d in session.scalars(select(Deadline).where(Deadline.request_id == request.id)
                                                     .order_by(Deadline.due_at, Deadline.id))]
    return {
        "order": summary,
        "quotes": [{"version": q.version, "amount": format_amount(q.amount), "currency": q.currency,
                    "status": q.status, "reason": q.reason or None, "created_at": _time(q.created_at),
                    "decided_at": _time(q.decided_at), "valid_until": _time(q.valid_until)} for q in order.quotes],
        "payments": [{"transaction_id": p.transaction_id, "date": _time(p.created_at), "method": p.method,
                      "provider": p.provider, "amount": format_amount(p.amount), "currency": p.currency,
                      "status": p.status, "attempts": p.attempts, "comment": p.comment} for p in order.payments],
    }
