"""Subscriptions (CONTRACT §10): an order with a plan becomes one at ``#confirm``, and the sweep bills it
every period through the payment provider, as Stripe's subscriptions do.

Statuses: ``scheduled`` (it starts later), ``active``, ``payment-failed`` (a charge was declined; it is
tried again ``[subscriptions] retry_days`` after the period began, Stripe's dunning schedule), and
``inactive`` (``reason``: ``payment-failed`` once the retries are spent, or ``terminated``). A period
is billed at its start; a later success makes the subscription active again. ``#plan`` changes the
plan from the next period; ``#terminate`` ends it at the end of the period, ``#terminate now`` at once.
Every step runs in its caller's transaction (a command's, or the sweep's with its deadline), and
customer and coordinators are mailed at each change.
"""

from __future__ import annotations

import calendar
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gateway.clock import utcnow
from gateway.deadlines import schedule, void
from gateway.helpdesk import record_event
from gateway.notify import Mailer
from gateway.orders.card import OrderError
from gateway.orders.mail import tell_coordinators, tell_customer
from gateway.orders.models import Order, Payment, Subscription
from gateway.orders.money import format_amount
from gateway.payments import provider_for
from gateway.payments.ledger import charge_request, update_payment_status
from gateway.settings import Plan, Settings

START = "subscription-start"
RENEWAL = "renewal"
RETRY = "renewal-retry"
END = "subscription-end"


def period_end(start: datetime, interval: str) -> datetime:
    """The end of a period that begins at ``start``: a week, or the same day of the next month or year
    (the last day of a shorter month: 31 January, then 28 February)."""
    if interval == "week":
        return start + timedelta(days=7)
    months = 12 if interval == "year" else 1
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def _plan(settings: Settings, name: str) -> Plan:
    plan = settings.plan(name)
    if plan is None:
        known = ", ".join(p.name for p in settings.plans) or "none configured ([[plans]] in the config)"
        raise OrderError(f"no plan named {name!r}; plans: {known}")
    return plan


def _tell(mailer: Mailer, order: Order, subscription: Subscription, change: str, **details: object) -> None:
    context = {"change": change, "subscription": subscription, "plan": subscription.plan,
               "period_end": subscription.current_period_end, **details}
    tell_customer(mailer, order, "subscription", context)
    tell_coordinators(mailer, order, "subscription", context)


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else ""


def choose_plan(session: Session, settings: Settings, mailer: Mailer, order: Order, name: str,
                starts_at: datetime | None, author: str) -> None:
    """``#plan NAME [from DATE]``: before ``#confirm``, the plan the order subscribes to; after, the plan of
    its subscription from the next period."""
    plan = _plan(settings, name)
    subscription = order.subscription
    if subscription is None:
        if order.request.status not in ("pending", "in-progress"):
            raise OrderError(f"order #{order.number} is {order.request.status} and has no subscription")
        order.plan, order.plan_starts_at = plan.name, starts_at
        order.total, order.currency = plan.amount, plan.currency
        record_event(order.request, "plan", f"{plan.name} chosen by {author}")
        return
    if subscription.status == "inactive":
        raise OrderError(f"subscription {subscription.id} is inactive: a new order starts a new one")
    subscription.next_plan = plan.name
    record_event(order.request, "plan", f"{plan.name} from {_day(subscription.current_period_end)}, by {author}")
    _tell(mailer, order, subscription, "plan", next_plan=plan.name)


def start_subscription(session: Session, settings: Settings, mailer: Mailer, order: Order) -> Subscription:
    """``#confirm`` on an order with a plan: scheduled when it starts later, else active and charged now."""
    plan = _plan(settings, order.plan or "")
    subscription = Subscription(order=order, plan=plan.name)
    session.add(subscription)
    now = utcnow()
    if order.plan_starts_at is not None and order.plan_starts_at > now:
        subscription.status, subscription.next_charge_at = "scheduled", order.plan_starts_at
        session.flush()
        schedule(session, order.request, START, order.plan_starts_at)
        _tell(mailer, order, subscription, "scheduled", starts=order.plan_starts_at)
        return subscription
    _begin_period(session, settings, mailer, order, subscription, now, "started")
    return subscription


def _begin_period(session: Session, settings: Settings, mailer: Mailer, order: Order, subscription: Subscription,
                  start: datetime, change: str) -> None:
    if subscription.next_plan:
        subscription.plan, subscription.next_plan = subscription.next_plan, None
    plan = _plan(settings, subscription.plan)
    subscription.current_period_start, subscription.current_period_end = start, period_end(start, plan.interval)
    subscription.failed_charges = 0
    _charge(session, settings, mailer, order, subscription, plan, change)


def _charge(session: Session, settings: Settings, mailer: Mailer, order: Order, subscription: Subscription,
            plan: Plan, change: str) -> None:
    """Bill the current period; active and renewed at its end (``change`` says so to both sides), or
    payment-failed and tried again."""
    provider = provider_for(settings, "card")
    result = provider.charge(replace(
        charge_request(order, plan.amount), currency=plan.currency,
        card_reference=order.customer.card_reference or order.card_reference,
        description=f"{plan.name}, {_day(subscription.current_period_start)} to "
                    f"{_day(subscription.current_period_end)} (#{order.number})"))
    payment = Payment(method="card", provider=provider.name, amount=plan.amount, currency=plan.currency,
                      status=result.status, transaction_id=result.transaction_id,
                      comment=f"subscription {subscription.id}: {plan.name} from "
                              f"{_day(subscription.current_period_start)}"
                              + ("" if result.succeeded else f": {result.message}"))
    order.payments.append(payment)
    update_payment_status(order)
    period_end_ = subscription.current_period_end
    assert period_end_ is not None and subscription.current_period_start is not None
    amount = f"{format_amount(plan.amount)} {plan.currency}"
    if result.succeeded:
        subscription.status, subscription.reason, subscription.failed_charges = "active", None, 0
        subscription.next_charge_at = None if subscription.ends_at_period_end else period_end_
        record_event(order.request, "subscription", f"{plan.name}: {amount} charged, active to {_day(period_end_)}")
        if not subscription.ends_at_period_end:
            schedule(session, order.request, RENEWAL, period_end_)
        _tell(mailer, order, subscription, change, amount=plan.amount, plan_currency=plan.currency)
        return
    subscription.failed_charges += 1
    record_event(order.request, "subscription", f"{plan.name}: {amount} declined ({result.message})")
    attempt = subscription.failed_charges - 1
    if attempt < len(settings.retry_days):
        retry_at = subscription.current_period_start + timedelta(days=settings.retry_days[attempt])
        subscription.status, subscription.next_charge_at = "payment-failed", retry_at
        schedule(session, order.request, RETRY, retry_at)
        _tell(mailer, order, subscription, "declined", amount=plan.amount, plan_currency=plan.currency,
              reason=result.message, retry=retry_at)
        return
    subscription.status, subscription.reason, subscription.next_charge_at = "inactive", "payment-failed", None
    _tell(mailer, order, subscription, "inactive", amount=plan.amount, plan_currency=plan.currency,
          reason=result.message)


def terminate(session: Session, mailer: Mailer, order: Order, now: bool, author: str) -> Subscription:
    """``#terminate [now]``: at the end of the period (it stays active until then), or at once."""
    subscription = order.subscription
    if subscription is None or subscription.status == "inactive":
        raise OrderError(f"order #{order.number} has no running subscription")
    void(session, order.request, [START, RENEWAL, RETRY], "terminated")
    if now or subscription.status == "scheduled" or subscription.current_period_end is None:
        _end(mailer, order, subscription, author)
    else:
        subscription.ends_at_period_end, subscription.next_charge_at = True, None
        schedule(session, order.request, END, subscription.current_period_end)
        record_event(order.request, "subscription", f"ends on {_day(subscription.current_period_end)}, by {author}")
        _tell(mailer, order, subscription, "terminating")
    return subscription


def _end(mailer: Mailer, order: Order, subscription: Subscription, author: str) -> None:
    subscription.status, subscription.reason, subscription.next_charge_at = "inactive", "terminated", None
    record_event(order.request, "subscription", f"terminated by {author}")
    _tell(mailer, order, subscription, "terminated")


def due_start(session: Session, settings: Settings, mailer: Mailer, order: Order) -> str:
    subscription = order.subscription
    if subscription is None or subscription.status != "scheduled":
        return "nothing to do"
    _begin_period(session, settings, mailer, order, subscription, utcnow(), "started")
    return f"started: {subscription.status}"


def due_renewal(session: Session, settings: Settings, mailer: Mailer, order: Order, due_at: datetime) -> str:
    subscription = order.subscription
    if subscription is None or subscription.status not in ("active", "payment-failed"):
        return "nothing to do"
    _begin_period(session, settings, mailer, order, subscription, due_at, "renewed")
    return f"renewed: {subscription.status}"


def due_retry(session: Session, settings: Settings, mailer: Mailer, order: Order) -> str:
    subscription = order.subscription
    if subscription is None or subscription.status != "payment-failed":
        return "nothing to do"
    _charge(session, settings, mailer, order, subscription, _plan(settings, subscription.plan), "recovered")
    return f"retried: {subscription.status}"


def due_end(session: Session, settings: Settings, mailer: Mailer, order: Order) -> str:
    subscription = order.subscription
    if subscription is None or subscription.status == "inactive":
        return "nothing to do"
    _end(mailer, order, subscription, "the gateway (end of the period)")
    return "terminated"
