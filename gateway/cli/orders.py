"""The order commands of ``gateway`` (orders, stats, people set, payments, subscriptions), registered into
the main parser. As in ``cli.main``, each command imports what it needs inside its own function, to keep
start-up light."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.addresses import email_argument
from gateway.cli.base import AddCommand, UserError, print_json, settings_of

if TYPE_CHECKING:
    from gateway.context import Context


def _deliver(context: Context, outbox_ids: list[int]) -> None:
    """Send after the commit, as ``gateway replay`` does: a CLI has no worker of its own."""
    from gateway.outbound.outbox import deliver_all

    deliver_all(context, outbox_ids)


def cmd_orders_create(args: argparse.Namespace) -> int:
    from gateway.context import open_context
    from gateway.orders.placing import FieldError, create_order, validate_order
    from gateway.transaction import mailing

    try:
        payload = json.loads(Path(args.file).read_text(encoding="utf-8"), parse_float=Decimal)
    except OSError as error:
        raise UserError(f"cannot read {args.file}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise UserError(f"{args.file} is not JSON: {error}") from error
    context = open_context(settings_of(args))
    with mailing(context) as (session, mailer):
        draft = validate_order(session, context.settings, payload)
        if isinstance(draft, list):
            errors: list[FieldError] = draft
            raise UserError(f"{args.file}: " + "; ".join(f"{e.field or 'order'}: {e.message}" for e in errors))
        order = create_order(session, context.settings, mailer, draft, source="manual")
        line = f"order #{order.number} created for {order.customer.email}: {order.total} {order.currency}"
    _deliver(context, mailer.outbox_ids)
    print(line)
    return 0


def cmd_orders_ship(args: argparse.Namespace) -> int:
    """Ship several orders at once, without a prompt; each one that cannot ship is named, the others ship."""
    from gateway.context import open_context
    from gateway.models import Request
    from gateway.notify import Mailer
    from gateway.orders.card import OrderError, ensure_order
    from gateway.orders.lifecycle import ship_order

    context = open_context(settings_of(args))
    failures: list[str] = []
    outbox_ids: list[int] = []
    for number in args.numbers:
        with context.sessions() as session:
            mailer = Mailer(session, context.settings)
            request = session.get(Request, number)
            try:
                if request is None:
                    raise OrderError(f"no order #{number}")
                ship_order(context.settings, mailer, ensure_order(session, request, context.settings),
                           "gateway orders ship",
                           args.tracking or "")
            except OrderError as error:
                session.rollback()
                failures.append(str(error))
                continue
            mailer.write_outbox()
            session.commit()
            outbox_ids.extend(mailer.outbox_ids)
            print(f"order #{number} shipped" + (f" (tracking {args.tracking})" if args.tracking else ""))
    _deliver(context, outbox_ids)
    if failures:

        raise UserError("; ".join(failures))
    return 0


def cmd_people_set(args: argparse.Namespace) -> int:
    from gateway.context import open_context
    from gateway.helpdesk import find_person, upsert_person

    context = open_context(settings_of(args))
    with context.sessions.begin() as session:
        person = find_person(session, args.email) or upsert_person(session, args.email)
        if args.invoice is None and args.card is None and not args.new_page_link:
            raise UserError("nothing to set: give --invoice yes|no, --card TOKEN or --new-page-link")
        if args.new_page_link:
            person.page_key = (person.page_key or 0) + 1
            print(f"{person.email}: a new link to their page; the links mailed before no longer open it")
        if args.invoice is not None:
            person.invoice_enabled = args.invoice == "yes"
            print(f"{person.email}: invoice payment {'enabled' if person.invoice_enabled else 'disabled'}")
        if args.card is not None:
            person.card_reference = args.card or None
            print(f"{person.email}: card {'set' if person.card_reference else 'removed'}; renewals are charged on it")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from gateway.context import open_context
    from gateway.orders.stats import order_stats

    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError as error:
            raise UserError(f"--since {args.since}: give a date as YYYY-MM-DD") from error
    context = open_context(settings_of(args))
    with context.sessions() as session:
        stats = order_stats(session, since.replace(tzinfo=None) if since else None)
    if args.json:
        print_json(stats)
        return 0
    rate = stats["quote_acceptance_rate"]
    print(f"orders: {stats['orders']}" + (f" since {stats['since']}" if stats["since"] else ""))
    for status, count in stats["by_status"].items():
        print(f"  {status:<12} {count}")
    print(f"quotes accepted: {stats['quotes_accepted']} of {stats['quotes_decided']} decided"
          + (f" ({rate:.0%})" if rate is not None else ""))
    print(f"median hours to first answer: {stats['median_hours_to_first_answer'] or '-'}, "
          f"to decision: {stats['median_hours_to_decision'] or '-'}")
    revenue = ", ".join(f"{amount} {currency}" for currency, amount in stats["revenue_confirmed"].items())
    print(f"revenue confirmed: {revenue or 'none'}")
    print(f"on-quote orders confirmed without a quote (left out): {stats['on_quote_confirmed_without_quote']}")
    refunded = ", ".join(f"{amount} {currency}" for currency, amount in stats["refunded"].items())
    print(f"cancelled: {stats['cancelled']}; refunds: {stats['refunds']}" + (f" ({refunded})" if refunded else ""))
    return 0


def cmd_payments_import(args: argparse.Namespace) -> int:
    """Record the credits of a bank statement on the orders they name; print what matched and what did not."""
    from gateway.context import open_context
    from gateway.orders.bank import import_credits
    from gateway.payments.statements import StatementError, read_statement

    try:
        credits = read_statement(Path(args.file).read_bytes())
    except OSError as error:
        raise UserError(f"cannot read {args.file}: {error.strerror}") from error
    except StatementError as error:
        raise UserError(f"{args.file}: {error}") from error
    context = open_context(settings_of(args))
    with context.sessions.begin() as session:
        results = import_credits(session, credits)
    if args.json:
        print_json([{"line": r.credit.line, "entry_id": r.credit.entry_id, "date": r.credit.date,
                     "amount": str(r.credit.amount), "currency": r.credit.currency, "reference": r.credit.reference,
                     "order": r.order, "outcome": r.outcome} for r in results])
        return 0
    recorded = [r for r in results if r.outcome == "recorded"]
    for r in results:
        where = f"order #{r.order}" if r.order else "no order"
        print(f"{'matched  ' if r.outcome == 'recorded' else 'unmatched'} line {r.credit.line}: {r.credit.amount} "
              f"{r.credit.currency} {r.credit.reference!r} -> {where}: {r.outcome}")
    print(f"{len(recorded)} payments recorded, {len(results) - len(recorded)} credits not recorded, "
          f"of {len(results)} in {args.file}")
    return 0


def cmd_subscriptions(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from gateway.context import open_context
    from gateway.orders.models import Subscription
    from gateway.orders.summaries import subscription_summary

    context = open_context(settings_of(args))
    with context.sessions() as session:
        if args.action == "show":
            found = session.get(Subscription, args.id)
            if found is None:
                raise UserError(f"no subscription {args.id}: `gateway subscriptions list` lists them")
            shown = subscription_summary(found, payments=True)
            if args.json:
                print_json(shown)
                return 0
            print(f"subscription {shown['id']} (order #{shown['order']}, {shown['customer']}): {shown['plan']}, "
                  f"{shown['status']}" + (f" ({shown['reason']})" if shown["reason"] else ""))
            print(f"  period ends {shown['current_period_end'] or '-'}, next charge {shown['next_charge_at'] or '-'}"
                  + (f", plan {shown['next_plan']} from the next period" if shown["next_plan"] else ""))
            for payment in shown["payments"]:
                print(f"  {payment['created_at']}  {payment['amount']} {payment['currency']}  {payment['status']}")
            return 0
        query = select(Subscription).order_by(Subscription.id)
        if args.status:
            query = query.where(Subscription.status == args.status)
        listed = [subscription_summary(s) for s in session.scalars(query)]
    if args.json:
        print_json(listed)
        return 0
    for shown in listed:
        print(f"{shown['id']:>5}  #{shown['order']:<6} {shown['customer']:<32} {shown['plan']:<16} "
              f"{shown['status']:<15} next charge {shown['next_charge_at'] or '-'}")
    if not listed:
        print("no subscriptions" + (f" {args.status}" if args.status else ""))
    return 0


def register_order_commands(add: AddCommand,
                            people: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the order subcommands; ``add(name, handler, help)`` returns the subparser, ``people``
    holds the actions of ``gateway people``, which ``set`` joins."""
    orders = add("orders", cmd_orders_create, "create and ship orders")
    orders.add_argument("--data", help="data folder")
    actions = orders.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="an order from a JSON file (the same fields as POST /api/orders)")
    create.add_argument("file", metavar="FILE.json")
    create.set_defaults(handler=cmd_orders_create)
    ship = actions.add_parser("ship", help="mark confirmed orders shipped and tell their customers (no prompt)")
    ship.add_argument("numbers", type=int, nargs="+", metavar="NUMBER")
    ship.add_argument("--tracking", help="the tracking reference, given to the customers")
    ship.set_defaults(handler=cmd_orders_ship)
    person = people.add_parser("set", help="change an account's options")
    person.add_argument("email", metavar="EMAIL", type=email_argument)
    person.add_argument("--invoice", choices=["yes", "no"], help="may this customer pay by invoice")
    person.add_argument("--card", metavar="TOKEN", help="the card subscriptions are charged on (a provider's saved "
                        "card: a Stripe PaymentMethod id, or fake-card's tok_visa / tok_chargeDeclined)")
    person.add_argument("--new-page-link", action="store_true",
                        help="revoke the links to this customer's own page mailed so far (new mails carry a new one)")
    person.set_defaults(handler=cmd_people_set)
    payments = add("payments", cmd_payments_import, "payments that arrive by themselves: bank statements")
    payments.add_argument("--data", help="data folder")
    payment_actions = payments.add_subparsers(dest="action", required=True, metavar="ACTION")
    statement = payment_actions.add_parser(
        "import", help="record the credits of a bank statement (CAMT.053 XML, or CSV: date,amount,currency,"
                       "reference[,entry_id]) on the orders their reference names, once each")
    statement.add_argument("file", metavar="FILE")
    statement.add_argument("--json", action="store_true", help="what became of each credit, as JSON")
    statement.set_defaults(handler=cmd_payments_import)
    subscriptions = add("subscriptions", cmd_subscriptions, "subscriptions: orders with a plan, billed every period")
    subscriptions.add_argument("--data", help="data folder")
    sub_actions = subscriptions.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub_actions.add_parser("list", help="every subscription, oldest first")
    listing.add_argument("--status", choices=["scheduled", "active", "payment-failed", "inactive"])
    listing.add_argument("--json", action="store_true")
    showing = sub_actions.add_parser("show", help="one subscription with its payments")
    showing.add_argument("id", type=int, metavar="ID")
    showing.add_argument("--json", action="store_true")
    stats = add("stats", cmd_stats, "order statistics")
    stats.add_argument("--data", help="data folder")
    stats.add_argument("--since", metavar="DATE", help="only orders created on or after DATE (YYYY-MM-DD)")
    stats.add_argument("--json", action="store_true", help="print them as JSON")
