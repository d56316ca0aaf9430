"""What every command shares: its errors, its settings, how it prints JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from gateway.settings import Settings, check_secret, load


class UserError(Exception):
    """A failure the user can fix; printed as one line on stderr, exit status 1."""


class UsageError(Exception):
    """Bad usage: exit status 2."""


# Adds a subcommand to the parser: its name, its function, its help line.
AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def settings_of(args: argparse.Namespace) -> Settings:
    """The configuration named by ``--config``, with the addresses and data folder the command line gives."""
    settings = load(args.config, getattr(args, "data", None))
    return settings.with_overrides(smtp_host=getattr(args, "smtp_host", None),
                                   smtp_port=getattr(args, "smtp_port", None),
                                   http_host=getattr(args, "http_host", None),
                                   http_port=getattr(args, "http_port", None))


def signing_settings(args: argparse.Namespace) -> Settings:
    """The settings of a command that signs reply addresses and links: refused with a weak secret."""
    settings = settings_of(args)
    check_secret(settings.secret_key)
    return settings


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
