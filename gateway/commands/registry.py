"""The table of command handlers by name, which the handler modules fill (``dispatch`` applies them).

A handler changes state inside the transaction and raises ``CommandError`` when the
command cannot apply (an unknown address, an order that is not paid); the pipeline
then rolls the whole mail back and answers its sender with an error mail.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from gateway.change import RequestChange
from gateway.commands.grammar import BadCommand, Command


class CommandError(Exception):
    """This command line cannot apply; the message says why, for the sender's error mail."""

    def __init__(self, line: str, reason: str) -> None:
        super().__init__(f"{line}: {reason}")
        self.line = line
        self.reason = reason


Handler = Callable[[RequestChange, Command], None]
Validator = Callable[[Session, Command], str | None]
HANDLERS: dict[str, Handler] = {}
VALIDATORS: dict[str, Validator] = {}
# Read before the comment is written: they decide what the comment is.
COMMENT_SHAPING = frozenset({"private", "public", "note"})


def handles(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register


ORDER_ONLY: set[str] = set()  # the commands that apply to orders alone (``commands.orders.order_command``)

TextTaker = Callable[[str], str | None]
TEXT_TAKERS: dict[str, TextTaker] = {}


def takes_text(name: str, leaves: TextTaker) -> None:
    """``#name`` uses the mail's text itself: ``leaves(text)`` is what it leaves to be posted as a comment
    (a quote's words around its item lines), or None when it takes the whole mail, files included (a
    delivery's)."""
    TEXT_TAKERS[name] = leaves


def text_left(commands: list[Command], text: str) -> str | None:
    """The text to post as the mail's comment once its commands took theirs; None: nothing to post."""
    for command in commands:
        if command.name in TEXT_TAKERS:
            left = TEXT_TAKERS[command.name](text)
            if left is None:
                return None
            text = left
    return text


def validates(name: str) -> Callable[[Validator], Validator]:
    """A check that needs the database (an address, a SKU), run on every line before anything applies,
    so the error mail can name every bad line at once."""
    def register(validator: Validator) -> Validator:
        VALIDATORS[name] = validator
        return validator

    return register


def lookup_problems(session: Session, commands: list[Command]) -> list[BadCommand]:
    problems = []
    for command in commands:
        validator = VALIDATORS.get(command.name)
        reason = validator(session, command) if validator else None
        if reason:
            problems.append(BadCommand(command.line, reason))
    return problems
