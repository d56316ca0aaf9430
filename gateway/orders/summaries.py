"""Orders as plain data (CONTRACT §7): what ``gateway requests show --json`` adds for an order."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.clock import iso_utc
from gateway.models import Deadline, Request
from gateway.orders.card import ensure_order
from gateway.orders.models import Order, Subscription
from gateway.orders.money import format_amount


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
        "shipping_address": order.shipping_address or None,
        "customer": order.customer.email,
        "manager": order.manager.email if order.manager else None,
        "internal_comment": order.internal_comment or None,
        "due_at": iso_utc(order.due_at),
        "late": order.late,
        "delivered_at": iso_utc(order.delivered_at),
        "review": ({"rating": order.review_rating, "text": order.review_text} if order.reviewed_at else None),
        "cancellation": ({"requested_by": order.cancellation_by, "reason": order.cancellation_reason,
                          "status": order.cancellation_status} if order.cancellation_status else None),
        "revision": ({"reason": order.revision_reason, "status": order.revision_status}
                     if order.revision_status else None),
        "subscription": order.subscription_id,
    }


def subscription_summary(subscription: Subscription, *, payments: bool = False) -> dict[str, Any]:
    """A subscription as ``gateway subscriptions list`` shows it; ``payments`` adds what ``show`` adds."""
    shown: dict[str, Any] = {
        "id": subscription.id, "order": subscription.order_id, "customer": subscription.order.customer.email,
        "plan": subscription.plan, "status": subscription.status, "reason": subscription.reason,
        "current_period_end": iso_utc(subscription.current_period_end),
        "next_charge_at": iso_utc(subscription.next_charge_at)}
    if payments:
        shown["next_plan"] = subscription.next_plan
        shown["payments"] = [{"amount": format_amount(p.amount), "currency": p.currency, "status": p.status,
                              "created_at": iso_utc(p.created_at), "reference": p.transaction_id}
                             for p in subscription.order.payments]  # its order is billed for it alone
    return shown


def order_detail(session: Session, request: Request) -> dict[str, Any] | None:
    """``{"order": ..., "quotes": [...], "payments": [...]}`` for an order request, None for a helpdesk one.

    Amounts are decimal strings; quotes and payments oldest first. A mail-created order
    whose card was never written gets it now (flushed; the caller's commit keeps it).
    """
    if request.kind != "order":
        return None
    order = ensure_order(session, request)
    summary = order_summary(order)
    summary["deadlines"] = [{"kind": d.kind, "due_at": iso_utc(d.due_at), "state": d.state}
                            for d in session.scalars(select(Deadline).where(Deadline.request_id == request.id)
                                                     .order_by(Deadline.due_at, Deadline.id))]
    return {
        "order": summary,
        "quotes": [{"version": q.version, "amount": format_amount(q.amount), "currency": q.currency,
                    "status": q.status, "reason": q.reason or None, "created_at": iso_utc(q.created_at),
                    "decided_at": iso_utc(q.decided_at), "valid_until": iso_utc(q.valid_until)} for q in order.quotes],
        "payments": [{"transaction_id": p.transaction_id, "date": iso_utc(p.created_at), "method": p.method,
                      "provider": p.provider, "amount": format_amount(p.amount), "currency": p.currency,
                      "status": p.status, "attempts": p.attempts, "comment": p.comment} for p in order.payments],
    }
