"""Order commands (CONTRACT §5, §10): #confirm, #decline, #quote, #withdraw, #payment, #paid, #remind, #ship,
#complete, #cancel.

Each handler finds the order card of the request and calls one step of
``gateway.orders``; an ``OrderError`` becomes a ``CommandError``, so nothing of the
mail applies and its sender is told why.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.commands.grammar import Command
from gateway.commands.registry import CommandContext, CommandError, handles, takes_text
from gateway.orders.card import OrderError, ensure_order
from gateway.orders.lifecycle import (
    cancel_order,
    change_payment_method,
    complete_order,
    confirm_order,
    decline_order,
    record_paid,
    remind_payment,
    ship_order,
)
from gateway.orders.models import Order
from gateway.orders.money import parse_amount
from gateway.orders.quotes import create_quote, read_quote_lines, withdraw_quote

OrderStep = Callable[[CommandContext, Command, Order], None]


def order_command(name: str) -> Callable[[OrderStep], OrderStep]:
    """Register an order step as the handler of ``#name``: refused on helpdesk requests, errors as refusals."""

    def register(step: OrderStep) -> OrderStep:
        def handler(context: CommandContext, command: Command) -> None:
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
def confirm(context: CommandContext, command: Command, order: Order) -> None:
    confirm_order(context.settings, context.mailer, order, context.author.email)


@order_command("decline")
def decline(context: CommandContext, command: Command, order: Order) -> None:
    decline_order(context.mailer, order, context.author.email, command.args)


@order_command("quote")
def quote(context: CommandContext, command: Command, order: Order) -> None:
    words = command.args.split()
    amount = parse_amount(words[0]) if words and words[0][0].isdigit() else None
    currency = words[-1] if words and not words[-1][0].isdigit() else None
    lines = read_quote_lines(context.text)
    create_quote(context.session, context.settings, context.mailer, order, author=context.author.email,
                 amount=amount, currency=currency, lines=lines)


takes_text("quote", lambda text: bool(read_quote_lines(text)))


@order_command("withdraw")
def withdraw(context: CommandContext, command: Command, order: Order) -> None:
    withdraw_quote(context.settings, context.mailer, order, context.author.email)


@order_command("payment")
def payment(context: CommandContext, command: Command, order: Order) -> None:
    change_payment_method(order, command.args, context.author.email)


@order_command("paid")
def paid(context: CommandContext, command: Command, order: Order) -> None:
    amount_text, _, reference = command.args.partition(" ")
    amount = parse_amount(amount_text)
    if amount is None:
        raise OrderError(f"{amount_text!r} is not an amount such as 450 or 450.00")
    record_paid(order, amount, reference.strip(), context.author.email)


@order_command("remind")
def remind(context: CommandContext, command: Command, order: Order) -> None:
    remind_payment(context.settings, context.mailer, order, context.author.email)


@order_command("cancel")
def cancel(context: CommandContext, command: Command, order: Order) -> None:
    cancel_order(context.settings, context.mailer, order, context.author.email, command.args)


@order_command("ship")
def ship(context: CommandContext, command: Command, order: Order) -> None:
    ship_order(context.mailer, order, context.author.email, command.args)


@order_command("complete")
def complete(context: CommandContext, command: Command, order: Order) -> None:
    complete_order(context.session, order, context.author.email, force=command.args.lower() == "force")
