"""Every key of the configuration, declared once: its type, default, limits and what it does.

``settings.load`` checks a file against these before reading it (an unknown section or key, a wrong
type, a value out of range: an error naming the file and line, with the closest known key), ``gateway
config reference`` prints them as the reference (``docs/configuration.md``), and ``gateway config
show`` walks them to print the effective configuration. The standard library does the checking: the
rules are few (a type, a range, a list of choices) and what matters is the message, which names the
line and suggests a key, which a schema library would not do for us (README, dependencies).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Key:
    name: str
    type: str  # str, int, float, bool, list of int, table (a key holding keys: imap)
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False  # never printed: config show masks it
    env: str = ""  # the environment variable that overrides it


IMAP = (
    Key("host", "str", None, "the IMAP server (required)"),
    Key("port", "int", 993, "its port", 1, 65535),
    Key("user", "str", "", "the account"),
    Key("password", "str", "", "its password; better in the environment (password_env)", secret=True),
    Key("password_env", "str", "", "the environment variable holding the password"),
    Key("folder", "str", "INBOX", "the folder polled"),
    Key("tls", "bool", True, "IMAP over TLS (993)"),
    Key("poll_seconds", "float", 60.0, "how often the folder is polled", 1, 86400),
)
MAILBOX = (
    Key("address", "str", None, "the mailbox's address, on the gateway's domain (required)"),
    Key("kind", "str", "helpdesk", "helpdesk, or orders (its requests are orders)", choices=("helpdesk", "orders")),
    Key("include_supplier", "bool", False, "helpdesk: a request about a product includes its main supplier"),
    Key("cc_become_observers", "bool", True, "the Cc of a customer's opening mail join the request as observers"),
    Key("imap", "table", None, "polls an IMAP folder into this mailbox (the keys of [mailboxes.imap] below)"),
    Key("acceptance_hours", "float", 0.0, "orders: not confirmed within this, the order is cancelled (0: never)",
        0, 8760),
    Key("delivery_days", "float", 0.0, "orders: the delivery deadline, from confirmation (0: none)", 0, 3650),
    Key("delivery_reminder_hours", "float", 24.0, "orders: coordinators reminded this long before it", 0, 8760),
    Key("review_days", "float", 0.0, "orders: the customer's window to complete or ask a revision after #deliver",
        0, 3650),
    Key("revision_answer_hours", "float", 48.0, "orders: time to answer a revision request", 0, 8760),
    Key("prepayment_reminder_days", "float", 0.0, "orders: an unpaid prepayment order is reminded after this",
        0, 3650),
    Key("prepayment_cancel_days", "float", 0.0, "orders: and cancelled after this (0: never)", 0, 3650),
)
PLAN = (
    Key("name", "str", None, "the plan's name, as #plan NAME names it (required)"),
    Key("amount", "str", None, "billed each interval, as a decimal string such as \"29.00\" (required)"),
    Key("currency", "str", "EUR", "the amount's currency"),
    Key("interval", "str", "month", "week, month or year", choices=("week", "month", "year")),
)

SECTIONS: dict[str, tuple[Key, ...]] = {
    "gateway": (
        Key("domain", "str", "shop.example", "the mail domain the gateway answers for"),
        Key("base_url", "str", "http://127.0.0.1:8000", "the web pages' address, used in the links of mails",
            env="GATEWAY_BASE_URL"),
        Key("secret_key", "str", "change-me", "signs reply addresses and links: at least 32 random characters",
            secret=True, env="GATEWAY_SECRET_KEY"),
        Key("secret_key_file", "str", "", "a file (from the home) holding the secret key, when secret_key is unset"),
        Key("data_dir", "str", "var", "raw messages, attachments, the outbox Maildir (--data overrides)",
            env="GATEWAY_DATA_DIR"),
        Key("database_url", "str", "", "\"\": SQLite in data_dir; postgresql+psycopg://… in production",
            secret=True, env="GATEWAY_DATABASE_URL"),
        Key("broker_url", "str", "", "\"\": work runs in-process; redis://… runs it on dramatiq workers",
            secret=True, env="GATEWAY_BROKER_URL"),
        Key("broker_namespace", "str", "gateway", "the Redis key prefix, for several gateways on one Redis"),
        Key("locale", "str", "fr", "the default language of mail and pages", choices=("fr", "en")),
        Key("site_name", "str", "Boutique Exemple", "the name mails and pages are signed with"),
        Key("site_address", "str", "", "the site's postal address, lines apart, on the delivery note beside its name"),
        Key("currency", "str", "EUR", "the default currency of quotes and orders"),
        Key("mails_per_hour", "int", 20, "mails one address receives in an hour at most (a loop breaker)",
            1, 100_000),
        Key("requests_per_sender_hour", "int", 5, "new requests a sender opens in an hour that are announced "
            "(and automatic mails a mailbox takes in)",
            1, 100_000),
        Key("attachments_max_mb", "float", 10.0, "a comment's files travel attached up to this; past it, links",
            0, 1024),
        Key("attachment_link_days", "int", 30, "how long such a download link works", 1, 3650),
        Key("sweep_seconds", "float", 60.0, "how often deadlines are swept", 0.1, 86400),
        Key("requeue_seconds", "float", 300.0, "work waiting this long past its time is queued again", 1, 86400),
        Key("clock_file", "str", "", "tests only: now is the real time plus the seconds written in this file"),
        Key("api_key", "str", "", "the older place of [orders] api_key", secret=True),
    ),
    "smtp": (
        Key("host", "str", "127.0.0.1", "the address the SMTP server listens on"),
        Key("port", "int", 2525, "its port", 1, 65535),
        Key("max_message_size", "int", 26_214_400, "bytes; a larger mail is refused (552)", 1024, 1 << 31),
        Key("trusted_authserv_id", "str", "", "the MTA in front whose Authentication-Results are believed"),
        Key("check_dkim", "bool", False, "the gateway is the MX: it checks DKIM signatures itself"),
        Key("max_sessions", "int", 400, "SMTP sessions a listener holds; past it, 421", 1, 100_000),
        Key("max_sessions_per_address", "int", 50, "of them from one client address", 1, 100_000),
        Key("idle_seconds", "float", 120.0, "a silent session is closed after this", 1, 86400),
        Key("data_seconds", "float", 600.0, "a message's whole DATA must arrive within this", 1, 86400),
    ),
    "http": (
        Key("host", "str", "127.0.0.1", "the address the web pages are served on"),
        Key("port", "int", 8000, "their port", 1, 65535),
    ),
    "relay": (
        Key("host", "str", "127.0.0.1", "the SMTP relay outgoing mail is handed to (no [relay]: the outbox Maildir)"),
        Key("port", "int", 25, "its port", 1, 65535),
        Key("user", "str", "", "the account, when the relay asks for one"),
        Key("password", "str", "", "its password", secret=True),
        Key("starttls", "bool", False, "STARTTLS before authenticating"),
    ),
    "orders": (
        Key("quote_validity_days", "int", 30, "a quote link is valid this long (0: it expires at once)", 0, 3650),
        Key("api_key", "str", "", "enables POST /api/orders (Authorization: Bearer …)", secret=True,
            env="GATEWAY_API_KEY"),
    ),
    "payments": (
        Key("provider", "str", "manual", "who charges card payments", choices=("manual", "fake-card", "stripe")),
        Key("default_method", "str", "transfer", "the payment method of orders that name none",
            choices=("card", "transfer", "cash", "invoice")),
        Key("stripe_api_key", "str", "", "Stripe's secret key", secret=True, env="GATEWAY_STRIPE_API_KEY"),
        Key("stripe_api_base", "str", "", "\"\": Stripe's own API; tests point it elsewhere"),
        Key("stripe_webhook_secret", "str", "", "the signing secret of POST /webhooks/stripe", secret=True),
        Key("bank_details", "str", "", "told to customers who pay by transfer (an IBAN in it is checked)"),
    ),
    "subscriptions": (
        Key("retry_days", "list of int", [1, 3, 5, 7], "a declined renewal is tried again after these days",
            1, 365),
    ),
}
# Sections written [[name]]: a list of tables, each with these keys.
ARRAYS: dict[str, tuple[Key, ...]] = {"mailboxes": MAILBOX, "plans": PLAN}
TABLES: dict[str, tuple[Key, ...]] = {"imap": IMAP}  # a key holding a table of its own


_SECRET_PARAMETER = re.compile(r"pass|secret|token|key", re.I)


def masked_url(url: str) -> str:
    """A URL safe to print: its password, and the value of any query parameter named like one, as ``***``."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, tail = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    if at and ":" in userinfo:
        authority = f"{userinfo.partition(':')[0]}:***@{host}"
    path, mark, query = tail.partition("?")
    parameters = [f"{name}=***" if equals and _SECRET_PARAMETER.search(name) else f"{name}{equals}{value}"
                  for name, equals, value in (part.partition("=") for part in query.split("&"))] if mark else []
    return f"{scheme}://{authority}{slash}{path}{mark}{'&'.join(parameters)}"


def closest(name: str, known: list[str]) -> str:
    """"; did you mean `x`?" for the known name nearest ``name``, or ""."""
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean `{match[0]}`?" if match else ""


def _line(text: str, table: str, key: str | None, occurrence: int = 0) -> int:
    """The line where ``key`` is set in ``[table]`` or in the ``occurrence``-th ``[[table]]`` ("": before
    any table), or where that table opens when ``key`` is None; 0 when not found."""
    current, seen = "", -1
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            current = header.group(1)
            seen += current == table
            if key is None and current == table and seen == occurrence:
                return number
        elif (key is not None and current == table and (seen == occurrence or not table)
              and re.search(rf"(?:^|[{{,])\s*{re.escape(key)}\s*=", line)):
            return number  # at the start of the line, or inside an inline table (imap = { … })
    return 0


def _type_problem(key: Key, value: Any) -> str:
    """What is wrong with ``value`` for ``key``, or ""."""
    if key.type == "str":
        ok = isinstance(value, str)
        wanted = "a string in quotes"
    elif key.type == "bool":
        ok = isinstance(value, bool)
        wanted = "true or false"
    elif key.type == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        wanted = "a whole number"
    elif key.type == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        wanted = "a number"
    elif key.type == "list of int":
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        wanted = "a list of whole numbers such as [1, 3, 5, 7]"
    else:  # table
        ok = isinstance(value, dict)
        wanted = "a table such as { host = \"imap.example\" }"
    if ok and key.type == "float" and not math.isfinite(value):
        ok, wanted = False, "a finite number"
    if not ok:
        return f"is {'(hidden: a secret)' if key.secret else repr(value)}; use {wanted}"
    if key.choices and value not in key.choices:
        return f"is {value!r}; use one of {', '.join(key.choices)}{closest(str(value), list(key.choices))}"
    numbers = value if key.type == "list of int" else [value] if key.type in ("int", "float") else []
    if any((key.low is not None and number < key.low) or (key.high is not None and number > key.high)
           for number in numbers):
        what = "numbers" if key.type == "list of int" else "a number"
        return f"is {value!r}; use {what} from {key.low:g} to {key.high:g}"
    return ""


def problems(raw: dict[str, Any], path: Path, text: str, *, mailbox_file: bool = False) -> list[str]:
    """Every problem of one parsed file, as ``file:line: message``; ``mailbox_file``: a
    ``mailboxes/*.toml``, whose top level holds one mailbox's keys."""
    found: list[str] = []

    def report(table: str, key: str | None, message: str, occurrence: int = 0) -> None:
        line = _line(text, table, key, occurrence)
        found.append(f"{path}:{line}: {message}" if line else f"{path}: {message}")

    def check_keys(values: dict[str, Any], keys: tuple[Key, ...], table: str, label: str,
                   occurrence: int = 0) -> None:
        known = {key.name: key for key in keys}
        for name, value in values.items():
            key = known.get(name)
            if key is None:
                report(table, name, f"`{name}`: unknown key in {label}{closest(name, list(known))}", occurrence)
                continue
            problem = _type_problem(key, value)
            if problem:
                report(table, name, f"{label} {name} {problem}", occurrence)
            elif key.type == "table":
                check_keys(value, TABLES[name], table, f"{label} {name}", occurrence)

    if mailbox_file:
        check_keys(raw, MAILBOX, "", "the mailbox")
        return found
    sections = [*SECTIONS, *ARRAYS]
    for name, value in raw.items():
        if name in SECTIONS and isinstance(value, dict):
            check_keys(value, SECTIONS[name], name, f"[{name}]")
        elif name in ARRAYS and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for occurrence, entry in enumerate(value):
                check_keys(entry, ARRAYS[name], name, f"[[{name}]]", occurrence)
        elif name in SECTIONS or name in ARRAYS:
            written = f"[{name}]" if name in SECTIONS else f"[[{name}]]"
            report(name, None, f"`{name}` must be written as a section, {written}")
        elif isinstance(value, dict | list):
            report(name, None, f"`{name}`: unknown section{closest(name, sections)}")
        else:
            report("", name, f"`{name}`: a key outside any section; put it under [gateway], [smtp]…"
                   f"{closest(name, [key.name for keys in SECTIONS.values() for key in keys])}")
    return found
