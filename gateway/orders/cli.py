"""The order commands of ``gateway`` (orders, stats, people set), registered into the main parser."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.cli import AddCommand


def register_order_commands(add: AddCommand) -> None:
    """Adds the order subcommands; ``add(name, handler, help)`` returns the subparser."""
