"""Order commands (CONTRACT §5, §10): #confirm, #decline, #quote, #withdraw, #payment, #paid, #remind, #ship,
#complete, #cancel.

Each handler finds the order card of the request and calls one step of
``gateway.orders``; an ``OrderError`` becomes a ``CommandError``, so nothing of the
mail applies and its sender is told why.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.attachments import keep_attachments
from gateway.change import RequestChange
from gateway.clock import utcnow
from gateway.commands.grammar import Command
from gateway.commands.registry import ORDER_ONLY, CommandError, handles, takes_text
from gateway.helpdesk import add_comment, find_person, record_event
from gateway.orders.card import OrderError, ensure_order
from gateway.orders.lifecycle import (
    answer_cancellation,
    answer_revision,
    cancel_order,
    change_payment_method,
    complete_order,
    confirm_order,
    decline_order,
    deliver_order,
    record_paid,
    remind_payment,
    set_due_date,
    ship_order,
)
from gateway.orders.models import Order
from gateway.orders.money import parse_amount
from gateway.orders.quotes import (
    ambiguous_quote_lines,
    create_quote,
    read_quote_lines,
    withdraw_quote,
    without_quote_lines,
)
from gateway.orders.subscriptions import choose_plan, terminate
from gateway.outbound.compose import MailFile

OrderStep = Callable[[RequestChange, Command, Order], None]


def order_command(name: str) -> Callable[[OrderStep], OrderStep]:
    """Register an order step as the handler of ``#name``: refused on helpdesk requests, errors as refusals."""

    ORDER_ONLY.add(name)

    def register(step: OrderStep) -> OrderStep:
        def handler(context: RequestChange, command: Command) -> None:
            if context.request.kind != "order":
                raise CommandError(command.line, f"#{name} applies to orders; request #{context.request.id} is a "
                                                 f"{context.request.kind} request")
            try:
                step(context, command, ensure_order(context.session, context.request, context.settings))
            except OrderError as error:
                raise CommandError(command.line, str(error)) from error

        handles(name)(handler)
        return step

    return register


@order_command("confirm")
def confirm(context: RequestChange, command: Command, order: Order) -> None:
    confirm_order(context.settings, context.mailer, order, context.author.email)


@order_command("decline")
def decline(context: RequestChange, command: Command, order: Order) -> None:
    decline_order(context.mailer, order, context.author.email, command.args)


@order_command("quote")
def quote(context: RequestChange, command: Command, order: Order) -> None:
    words = command.args.split()
    amount = parse_amount(words[0]) if words and words[0][0].isdigit() else None
    currency = words[-1] if words and not words[-1][0].isdigit() else None
    unclear = ambiguous_quote_lines(context.text)
    if unclear:
        raise OrderError(f"is the price of {unclear[0]!r} the last number or the last two? Put a colon before "
                         "the price (`1 x Canapé : 1 500`, `2 x Pack 3 : 150`) or write it without spaces (1500)")
    lines = read_quote_lines(context.text)
    create_quote(context.session, context.settings, context.mailer, order, author=context.author.email,
                 amount=amount, currency=currency, lines=lines)


takes_text("quote", without_quote_lines)  # the words around the item lines go to the customer as a comment


@order_command("withdraw")
def withdraw(context: RequestChange, command: Command, order: Order) -> None:
    withdraw_quote(context.settings, context.mailer, order, context.author.email)


@order_command("payment")
def payment(context: RequestChange, command: Command, order: Order) -> None:
    change_payment_method(order, command.args, context.author.email)


_THOUSANDS = re.compile(r"\d{1,3} \d{3}(?:[.,]\d{1,2})?")


@order_command("paid")
def paid(context: RequestChange, command: Command, order: Order) -> None:
    """``#paid AMOUNT [REFERENCE] [-- COMMENT]``."""
    recorded, _, comment = command.args.partition(" -- ")
    amount_text, _, reference = recorded.partition(" ")
    amount = parse_amount(amount_text)
    if amount is None:
        raise OrderError(f"{amount_text!r} is not an amount such as 450 or 450.00")
    if _THOUSANDS.fullmatch(f"{amount_text} {reference.strip()}"):  # "1 500": 1,500, or 1 with reference 500?
        raise OrderError(f"is {recorded.strip()!r} {amount_text} with the reference {reference.strip()}, or one "
                         "amount? Write the amount without spaces (1500), and a reference that is not three "
                         "digits alone (VIR-500): the customer's receipt names both")
    payment = record_paid(context.mailer, order, amount, reference.strip(), context.author.email)
    if comment.strip():
        payment.comment = comment.strip()


@order_command("manager")
def manager(context: RequestChange, command: Command, order: Order) -> None:
    """``#manager EMAIL|me|none``: the coordinator who manages the order (its card's manager)."""
    target = command.args.lower()
    if target == "me":
        target = context.author.email
    person = None if target == "none" else find_person(context.session, target)
    if target != "none" and (person is None or person.role != "coordinator"):
        raise OrderError(f"{target} is not a coordinator")
    order.manager = person
    record_event(order.request, "manager", f"{person.email if person else 'none'}, set by {context.author.email}")


@order_command("tag")
def tag(context: RequestChange, command: Command, order: Order) -> None:
    if command.args not in order.tags:
        order.tags = [*order.tags, command.args]


@order_command("untag")
def untag(context: RequestChange, command: Command, order: Order) -> None:
    if command.args not in order.tags:
        raise OrderError(f"order #{order.number} has no tag {command.args!r}")
    order.tags = [name for name in order.tags if name != command.args]


@order_command("comment")
def internal_comment(context: RequestChange, command: Command, order: Order) -> None:
    """``#comment TEXT``: the order card's internal comment (team only), replaced; ``#comment`` alone clears it."""
    order.internal_comment = command.args.strip()
    record_event(order.request, "comment", f"internal comment set by {context.author.email}")


@order_command("address")
def address(context: RequestChange, command: Command, order: Order) -> None:
    """``#address LINE / LINE``: where the order goes, on its delivery note (an order by mail has none)."""
    order.shipping_address = "\n".join(line.strip() for line in command.args.split(" / ") if line.strip())
    record_event(order.request, "address", f"delivery address set by {context.author.email}")


@order_command("remind")
def remind(context: RequestChange, command: Command, order: Order) -> None:
    remind_payment(context.settings, context.mailer, order, context.author.email)


@order_command("cancel")
def cancel(context: RequestChange, command: Command, order: Order) -> None:
    cancel_order(context.settings, context.mailer, order, context.author.email, command.args)


@order_command("due")
def due(context: RequestChange, command: Command, order: Order) -> None:
    set_due_date(context.settings, context.mailer, order, read_due(command.args), context.author.email)


def read_due(text: str) -> datetime:
    """``2027-01-15`` (the end of that day, UTC), ``2027-01-15 14:00``, ``3d`` or ``12h`` from now."""
    text = text.strip().lower()
    if text[-1:] in ("d", "h") and text[:-1].isdigit():
        amount = int(text[:-1])
        return utcnow() + (timedelta(days=amount) if text[-1] == "d" else timedelta(hours=amount))
    try:
        when = datetime.fromisoformat(text.replace(" ", "T"))
    except ValueError as error:
        raise OrderError(f"{text!r} is not a date such as 2027-01-15, nor 3d or 12h") from error
    if when.tzinfo is not None:  # stored times are UTC without a zone
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when + timedelta(days=1, seconds=-1) if len(text) == 10 else when


@order_command("deliver")
def deliver(context: RequestChange, command: Command, order: Order) -> None:
    """The mail's text and files are the delivery: kept as a public comment, and sent to the customer in
    the delivery mail rather than as a comment of their own."""
    if context.text or context.attachments:
        comment = add_comment(context.session, context.request, context.author, context.text, visibility="public")
        keep_attachments(context.settings.data_dir, comment, list(context.attachments))
    deliver_order(context.settings, context.mailer, order, context.author.email, context.text,
                  [MailFile(a.filename, a.content_type, a.payload) for a in context.attachments])


takes_text("deliver", lambda text: None)


@order_command("revision")
def revision(context: RequestChange, command: Command, order: Order) -> None:
    answer, _, reason = command.args.partition(" ")
    answer_revision(context.settings, context.mailer, order, answer.lower() == "accept", reason.strip(),
                    context.author.email)


@order_command("cancellation")
def cancellation(context: RequestChange, command: Command, order: Order) -> None:
    answer, _, reason = command.args.partition(" ")
    answer_cancellation(context.settings, context.mailer, order, answer.lower() == "accept", reason.strip(),
                        context.author.email)


@order_command("plan")
def plan(context: RequestChange, command: Command, order: Order) -> None:
    name, _, start = command.args.partition(" ")
    starts_at = read_due(start.split()[-1]) if start.strip() else None
    choose_plan(context.session, context.settings, context.mailer, order, name, starts_at, context.author.email)


@order_command("terminate")
def terminate_subscription(context: RequestChange, command: Command, order: Order) -> None:
    terminate(context.session, context.mailer, order, command.args.lower() == "now", context.author.email)


@order_command("ship")
def ship(context: RequestChange, command: Command, order: Order) -> None:
    words = command.args.split()
    force = bool(words) and words[0].lower() == "force"
    tracking = " ".join(words[1:] if force else words)
    ship_order(context.settings, context.mailer, order, context.author.email, tracking, force=force)


@order_command("complete")
def complete(context: RequestChange, command: Command, order: Order) -> None:
    complete_order(context.session, context.mailer, order, context.author.email,
                   force=command.args.lower() == "force")
