"""The ``#commands`` at the top of a reply (CONTRACT §5): reading them and checking them.

Reading is pure: ``split_commands`` takes the reply text and returns the command lines
and the rest. ``check_commands`` says which lines are bad for a given role, so the
pipeline can apply all of them or none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMMAND_LINE = re.compile(r"^#([A-Za-z][\w-]*)\b[ \t]*(.*)$")

# name -> (roles allowed, argument pattern)
_EVERYONE_BUT_CUSTOMERS = ("coordinator", "supplier", "observer")
_TEAM = ("coordinator", "supplier")
_COORDINATOR = ("coordinator",)
GRAMMAR: dict[str, tuple[tuple[str, ...], re.Pattern[str]]] = {
    "private": (_EVERYONE_BUT_CUSTOMERS, re.compile(r"^$")),
    "public": (_EVERYONE_BUT_CUSTOMERS, re.compile(r"^$")),
    "note": (_TEAM, re.compile(r"^.*$", re.S)),
    "status": (_COORDINATOR, re.compile(r"^(new|in-progress|resolved)$", re.I)),
    "assign": (_COORDINATOR, re.compile(r"^(\S+@\S+|me|all)$", re.I)),
    "label": (_COORDINATOR, re.compile(r"^\S.{0,99}$")),
    "unlabel": (_COORDINATOR, re.compile(r"^\S.{0,99}$")),
    "observer": (_COORDINATOR, re.compile(r"^(add|remove)\s+\S+@\S+$", re.I)),
    "expect": (_COORDINATOR, re.compile(r"^(customer|coordinator|supplier|none)$", re.I)),
    "confirm": (_COORDINATOR, re.compile(r"^$")),
    "decline": (_COORDINATOR, re.compile(r"^.*$")),
    # "#quote" alone takes its amount from the item lines below it ("2 x Page supplémentaire 150")
    "quote": (_COORDINATOR, re.compile(r"^(?:\d+(?:[.,]\d{1,2})?(?:\s+[A-Za-z]{3})?|[A-Za-z]{3})?$")),
    "withdraw": (_COORDINATOR, re.compile(r"^$")),
    "payment": (_COORDINATOR, re.compile(r"^(card|transfer|cash|invoice)$", re.I)),
    # "#paid 450 VIR-2291 -- reçu en deux fois": the amount, the bank's reference, a comment on the payment
    "paid": (_COORDINATOR, re.compile(r"^\d+(?:[.,]\d{1,2})?(?:\s+(?!--)\S+)?(?:\s+--\s+\S.{0,499})?$")),
    "remind": (_COORDINATOR, re.compile(r"^$")),
    "ship": (_COORDINATOR, re.compile(r"^(?:force\b\s*)?\S*$", re.I)),  # force: a prepayment order not paid yet
    "complete": (_COORDINATOR, re.compile(r"^(force)?$", re.I)),
    "cancel": (_COORDINATOR, re.compile(r"^\S.*$")),  # the reason, which the customer is told
    "due": (_COORDINATOR, re.compile(r"^(\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2})?|\d{1,4}[dh])$", re.I)),
    "deliver": (_COORDINATOR, re.compile(r"^$")),
    "plan": (_COORDINATOR, re.compile(r"^\S+(?:\s+from\s+\d{4}-\d{2}-\d{2})?$", re.I)),
    "terminate": (_COORDINATOR, re.compile(r"^(now)?$", re.I)),
    "revision": (_COORDINATOR, re.compile(r"^(accept|refuse)\b.*$", re.I)),
    "cancellation": (_COORDINATOR, re.compile(r"^(accept|refuse)\b.*$", re.I)),
    "product": (_COORDINATOR, re.compile(r"^\S+$")),
    "delivery": (_COORDINATOR, re.compile(r"^\S+$")),
    # "#address Léa Martin / 12 rue des Lilas / 75011 Paris": the order's delivery address, " / " between lines
    "address": (_COORDINATOR, re.compile(r"^\S.{0,499}$")),
    "list": (_COORDINATOR, re.compile(r"^(new|in-progress|resolved)?$", re.I)),
    "help": (_EVERYONE_BUT_CUSTOMERS, re.compile(r"^$")),
    "show": (_COORDINATOR, re.compile(r"^(?:#?\d{1,9})?$")),  # another request's number: its card
    "manager": (_COORDINATOR, re.compile(r"^(\S+@\S+|me|none)$", re.I)),
    "tag": (_COORDINATOR, re.compile(r"^\S.{0,59}$")),
    "untag": (_COORDINATOR, re.compile(r"^\S.{0,59}$")),
    "comment": (_COORDINATOR, re.compile(r"^.{0,2000}$", re.S)),
}


def allowed(role: str) -> list[str]:
    """The commands ``role`` may write, in the table's order."""
    return [name for name, (roles, _pattern) in GRAMMAR.items() if role in roles]


@dataclass(frozen=True)
class Command:
    name: str
    args: str
    line: str


@dataclass(frozen=True)
class BadCommand:
    line: str
    reason: str


def split_commands(reply_text: str, own_text: str | None = None) -> tuple[list[Command], str]:
    """The ``#`` lines at the very top of the reply, and the text after them.

    ``own_text``: the reply in the sender's own parts, when the mail carries another message (a forward
    as an attachment, ``ParsedMail.own_reply_text``). Commands are read there alone: the lines of the
    message carried, whoever wrote them, stay text, even right below the sender's own commands.
    """
    commands, index, lines = _leading_commands(reply_text)
    if own_text is not None:
        own, _index, _lines = _leading_commands(own_text)
        index = len(own) if [c.line for c in commands[:len(own)]] == [c.line for c in own] else 0
        commands = own
    return commands, "\n".join(lines[index:]).strip()


def _leading_commands(text: str) -> tuple[list[Command], int, list[str]]:
    commands: list[Command] = []
    lines = text.strip("\n").split("\n")
    index = 0
    while index < len(lines):
        match = _COMMAND_LINE.match(lines[index].strip())
        if not match:
            break
        commands.append(Command(name=match.group(1).lower(), args=match.group(2).strip(), line=lines[index].strip()))
        index += 1
    return commands, index, lines


def check_commands(commands: list[Command], role: str, implemented: frozenset[str]) -> list[BadCommand]:
    """Every line that is unknown, malformed or not allowed for ``role``; empty when all may apply."""
    bad: list[BadCommand] = []
    for command in commands:
        rule = GRAMMAR.get(command.name)
        if rule is None or command.name not in implemented:
            bad.append(BadCommand(command.line, f"unknown command #{command.name}"))
            continue
        roles, pattern = rule
        if role not in roles:
            bad.append(BadCommand(command.line, f"#{command.name} is not allowed for a {role}"))
        elif not pattern.match(command.args):
            bad.append(BadCommand(command.line, f"#{command.name} does not take {command.args!r}"))
    return bad
