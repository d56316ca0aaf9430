"""Applying a mail's commands with every handler of this installation, all or nothing.

Importing the handler modules registers them in ``registry``'s tables: this module is the one that
does, so whoever applies commands has them all.
"""

from __future__ import annotations

from gateway.change import RequestChange
from gateway.commands import helpdesk, orders  # noqa: F401  (they register their handlers)
from gateway.commands.grammar import Command
from gateway.commands.registry import COMMENT_SHAPING, HANDLERS


def implemented() -> frozenset[str]:
    """Every command this installation can apply."""
    return frozenset(HANDLERS) | COMMENT_SHAPING


def apply_commands(context: RequestChange, commands: list[Command]) -> None:
    for command in commands:
        if command.name not in COMMENT_SHAPING:
            HANDLERS[command.name](context, command)
