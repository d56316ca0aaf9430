"""The configuration (CONTRACT §2): config file, the home's mailbox files, then the environment.

Everything is read once into a frozen ``Settings``; nothing here runs at import.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gateway.config_keys import SECTIONS, problems


class ConfigError(Exception):
    """The configuration cannot be used; the message says what and how to fix it."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int = 993
    user: str = ""
    password: str = ""
    folder: str = "INBOX"
    tls: bool = True
    poll_seconds: float = 60.0


@dataclass(frozen=True)
class OrderTimes:
    """An orders mailbox's deadlines (CONTRACT §10); 0 turns one off."""

    acceptance_hours: float = 0
    delivery_days: float = 0
    delivery_reminder_hours: float = 24
    review_days: float = 0
    revision_answer_hours: float = 48
    prepayment_reminder_days: float = 0
    prepayment_cancel_days: float = 0


@dataclass(frozen=True)
class Plan:
    """A subscription plan (CONTRACT §10, ``[[plans]]``): billed ``amount`` every ``interval``."""

    name: str
    amount: Decimal
    currency: str
    interval: str  # week, month, year


@dataclass(frozen=True)
class Mailbox:
    address: str
    kind: str = "helpdesk"
    include_supplier: bool = False
    imap: ImapSettings | None = None
    times: OrderTimes = OrderTimes()
    cc_become_observers: bool = True  # the Cc of a customer's opening mail: mail-only observers (CONTRACT §4)

    @property
    def local_part(self) -> str:
        return self.address.split("@", 1)[0]

    @property
    def request_kind(self) -> str:
        return "order" if self.kind == "orders" else "helpdesk"


@dataclass(frozen=True)
class Relay:
    host: str = "127.0.0.1"
    port: int = 25
    user: str = ""
    password: str = ""
    starttls: bool = False


@dataclass(frozen=True)
class Settings:
    home: Path
    domain: str = "shop.example"
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = "change-me"  # EXAMPLE_SECRET; check_secret refuses it
    data_dir: Path = Path("var")
    database_url: str = ""
    broker_url: str = ""
    broker_namespace: str = "gateway"
    locale: str = "fr"
    site_name: str = "Boutique Exemple"
    site_address: str = ""
    currency: str = "EUR"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    max_message_size: int = 26_214_400
    smtp_max_sessions: int = 400  # per listener process; past it, 421
    smtp_max_sessions_per_address: int = 50  # the MTA in front may keep 20 or so open
    smtp_idle_seconds: float = 120.0  # a session silent this long is closed
    smtp_data_seconds: float = 600.0  # the whole of one message's DATA
    trusted_authserv_id: str = ""  # the MTA in front whose Authentication-Results are believed (CONTRACT §4)
    check_dkim: bool = False  # the gateway is the MX: it checks DKIM signatures itself (CONTRACT §4)
    # Where DKIM keys are looked up, as dkimpy's dnsfunc: None is the DNS; tests give a table.
    dkim_txt: Callable[..., bytes | None] | None = field(default=None, compare=False, repr=False)
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    relay: Relay | None = None
    mails_per_hour: int = 20
    requeue_seconds: float = 300.0  # work waiting this long past its time is queued again (the broker lost it)
    clock_file: Path | None = None  # tests only: "now" is the real time plus the seconds in it (CONTRACT §10)
    sweep_seconds: float = 60.0  # how often deadlines are swept and removed participants published (CONTRACT §10)
    requests_per_sender_hour: int = 5  # acknowledged and announced; past it, one digest, then silence
    attachments_max_mb: float = 10.0  # a comment's files travel with it up to this much a mail; past it, links
    attachment_link_days: int = 30  # how long such a download link works
    mailboxes: tuple[Mailbox, ...] = field(default_factory=tuple)
    quote_validity_days: int = 30
    api_key: str = ""
    payment_provider: str = "manual"  # manual | fake-card | stripe: who charges card payments
    default_payment_method: str = "transfer"  # card | transfer | cash | invoice, for orders that name none
    stripe_api_key: str = ""
    stripe_api_base: str = ""  # "" = Stripe's own; tests point it at recorded responses
    stripe_webhook_secret: str = ""  # [payments] stripe_webhook_secret: the endpoint's signing secret (whsec_…)
    bank_details: str = ""  # [payments] bank_details: told to customers who pay by transfer (CONTRACT §10)
    plans: tuple[Plan, ...] = ()
    retry_days: tuple[int, ...] = (1, 3, 5, 7)  # [subscriptions] retry_days: a declined renewal is tried again

    def plan(self, name: str) -> Plan | None:
        return next((plan for plan in self.plans if plan.name.lower() == name.lower()), None)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'gateway.db'}"

    def mailbox_for(self, address: str) -> Mailbox | None:
        """The mailbox an address belongs to, reply tokens (``local+token@``) included."""
        local, _, domain = address.lower().partition("@")
        if domain != self.domain:
            return None
        local = local.split("+", 1)[0]
        for mailbox in self.mailboxes:
            if mailbox.local_part == local:
                return mailbox
        if local in ("postmaster", "abuse"):
            return self.first_helpdesk()
        return None

    def is_own_address(self, address: str) -> bool:
        """One of the gateway's own addresses (a mailbox, a reply address, postmaster, abuse): mail to it
        would come straight back in, and two gateways would answer each other for ever."""
        return self.mailbox_for(address) is not None

    def first_helpdesk(self) -> Mailbox | None:
        return next((m for m in self.mailboxes if m.kind == "helpdesk"), None)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


MIN_SECRET_LENGTH = 32
EXAMPLE_SECRET = "change-me"


def check_secret(secret_key: str) -> None:
    """Refuse a key anyone could know or guess: it signs every reply address and quote link, so
    with it a stranger mints a coordinator's token. ``serve``, ``worker`` and ``check`` call it."""
    how = ("set [gateway] secret_key (or GATEWAY_SECRET_KEY) to a random string of at least "
           f"{MIN_SECRET_LENGTH} characters: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'")
    if not secret_key:
        raise ConfigError(f"secret_key is empty: {how}")
    if secret_key == EXAMPLE_SECRET:
        raise ConfigError(f"secret_key is the example's {EXAMPLE_SECRET!r}: {how}")
    if len(secret_key) < MIN_SECRET_LENGTH:
        raise ConfigError(f"secret_key has {len(secret_key)} characters: {how}")


def _secret(section: dict[str, Any], home: Path) -> str:
    """``secret_key``, else the content of ``secret_key_file`` (a path from the home), else the example's."""
    if section.get("secret_key") or not section.get("secret_key_file"):
        return str(section.get("secret_key", EXAMPLE_SECRET))
    path = home / str(section["secret_key_file"])
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except OSError as error:
        raise ConfigError(f"secret_key_file {path}: {error.strerror}") from error


_DEFAULT_MAILBOXES = (Mailbox("support@shop.example", "helpdesk"), Mailbox("orders@shop.example", "orders"))


_INTERVALS = ("week", "month", "year")


def _plans(raw: list[dict[str, Any]], where: str) -> tuple[Plan, ...]:
    plans = []
    for entry in raw:
        name, interval = str(entry.get("name", "")).strip(), str(entry.get("interval", "month"))
        if not name:
            raise ConfigError(f"{where}: a [[plans]] entry needs a name")
        if interval not in _INTERVALS:
            raise ConfigError(f"{where}: plan {name} has interval {interval!r}; use week, month or year")
        try:
            amount = Decimal(str(entry.get("amount", ""))).quantize(Decimal("0.01"))
        except InvalidOperation as error:
            raise ConfigError(f"{where}: plan {name} needs an amount such as \"29.00\"") from error
        if amount <= 0:
            raise ConfigError(f"{where}: plan {name} needs an amount above zero")
        plans.append(Plan(name, amount, str(entry.get("currency", "EUR")).upper(), interval))
    return tuple(plans)


_IBAN_SHAPED = re.compile(r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,32}")


def _bank_details(text: str, where: str) -> str:
    """The bank details told to customers who pay by transfer. An IBAN in them with a wrong check digit
    or length for its country would send every customer's transfer back: refused here, not at the bank."""
    from stdnum import iban  # kept out of start-up: only a configuration with bank details pays for it

    for shaped in _IBAN_SHAPED.finditer(text):
        compact = shaped.group().replace(" ", "")
        if not any(iban.is_valid(compact[:length]) for length in range(15, len(compact) + 1)):
            raise ConfigError(f"{where}: [payments] bank_details: {shaped.group()[:42]!r} is not a valid IBAN "
                              "(its check digits or its length for the country are wrong)")
    return text


class _Section:
    """One section's values: what the environment set (each key's declared variable), else the file
    (checked against the declarations when it was read), else the declared default."""

    def __init__(self, name: str, raw: dict[str, Any]) -> None:
        self.defaults = {key.name: key.default for key in SECTIONS[name]}
        self.values = dict(raw.get(name, {}))
        for key in SECTIONS[name]:
            if key.env and os.environ.get(key.env):
                self.values[key.name] = os.environ[key.env]

    def __getitem__(self, name: str) -> Any:
        return self.values[name] if name in self.values else self.defaults[name]


def find_config(explicit: str | None) -> Path | None:
    """``--config``, else ``$GATEWAY_CONFIG``, else ``./gateway.toml`` if present."""
    chosen = explicit or os.environ.get("GATEWAY_CONFIG")
    if chosen:
        path = Path(chosen)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist: check --config or GATEWAY_CONFIG")
        return path.resolve()
    local = Path("gateway.toml")
    return local.resolve() if local.is_file() else None


def _read_toml(path: Path, *, mailbox_file: bool = False) -> dict[str, Any]:
    """A configuration file, checked against the declared keys (``config_keys``): every problem at once."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from error
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: {error}") from error
    found = problems(raw, path, text, mailbox_file=mailbox_file)
    if found:
        raise ConfigError("\n".join(found))
    return raw


def _imap(raw: dict[str, Any], where: str) -> ImapSettings:
    if "host" not in raw:
        raise ConfigError(f"{where}: imap needs a host")
    password = raw.get("password", "")
    if "password_env" in raw:
        password = os.environ.get(raw["password_env"], "")
        if not password:
            raise ConfigError(f"{where}: environment variable {raw['password_env']} (imap password) is not set")
    return ImapSettings(host=raw["host"], port=int(raw.get("port", 993)), user=raw.get("user", ""),
                        password=password, folder=raw.get("folder", "INBOX"), tls=bool(raw.get("tls", True)),
                        poll_seconds=float(raw.get("poll_seconds", 60)))


def _mailbox(raw: dict[str, Any], where: str) -> Mailbox:
    address = str(raw.get("address", "")).lower()
    if "@" not in address:
        raise ConfigError(f"{where}: a mailbox needs an address like support@shop.example")
    kind = raw.get("kind", "helpdesk")
    if kind not in ("helpdesk", "orders"):
        raise ConfigError(f"{where}: mailbox {address} has kind {kind!r}; use helpdesk or orders")
    imap = _imap(raw["imap"], where) if raw.get("imap") else None
    times = {}
    for name in OrderTimes.__dataclass_fields__:
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{where}: mailbox {address} has {name} = {value!r}; use a number of "
                                  f"{name.rpartition('_')[2]}, 0 to turn it off")
            times[name] = float(value)
    cc = raw.get("cc_become_observers", True)
    if not isinstance(cc, bool):
        raise ConfigError(f"{where}: mailbox {address} has cc_become_observers = {cc!r}; use true or false")
    return Mailbox(address=address, kind=kind, include_supplier=bool(raw.get("include_supplier", False)), imap=imap,
                   times=OrderTimes(**times), cc_become_observers=cc)


def _mailboxes(config: dict[str, Any], home: Path, config_path: Path | None) -> tuple[Mailbox, ...]:
    found: list[Mailbox] = [_mailbox(m, str(config_path)) for m in config.get("mailboxes", [])]
    for path in sorted((home / "mailboxes").glob("*.toml")):
        found.append(_mailbox(_read_toml(path, mailbox_file=True), str(path)))
    seen: set[str] = set()
    for mailbox in found:
        if mailbox.address in seen:
            raise ConfigError(f"two mailboxes have the address {mailbox.address}: keep one")
        seen.add(mailbox.address)
    return tuple(found)


def load(config: str | None = None, data_dir: str | None = None) -> Settings:
    """Read the configuration every command shares."""
    path = find_config(config)
    home = path.parent if path else Path.cwd()
    raw = _read_toml(path) if path else {}
    gateway = _Section("gateway", raw)
    section = gateway.values
    if data_dir:
        section["data_dir"] = data_dir
    relay = Relay(**raw["relay"]) if raw.get("relay") else None
    mailboxes = _mailboxes(raw, home, path) or _DEFAULT_MAILBOXES
    domain = str(section.get("domain", "shop.example")).lower()
    for mailbox in mailboxes:
        if not mailbox.address.endswith("@" + domain):
            raise ConfigError(f"mailbox {mailbox.address} is not on the gateway's domain {domain}")
    data = Path(section.get("data_dir", "var"))
    smtp_, http_ = _Section("smtp", raw), _Section("http", raw)
    orders_, payments_ = _Section("orders", raw), _Section("payments", raw)
    return Settings(
        home=home,
        domain=domain,
        base_url=str(gateway["base_url"]).rstrip("/"),
        secret_key=_secret(section, home),
        data_dir=data if data.is_absolute() else (home / data),
        database_url=gateway["database_url"],
        broker_url=gateway["broker_url"],
        broker_namespace=gateway["broker_namespace"],
        locale=gateway["locale"],
        site_name=gateway["site_name"],
        site_address=gateway["site_address"],
        currency=gateway["currency"],
        smtp_host=smtp_["host"],
        smtp_port=smtp_["port"],
        max_message_size=smtp_["max_message_size"],
        trusted_authserv_id=smtp_["trusted_authserv_id"],
        check_dkim=smtp_["check_dkim"],
        smtp_max_sessions=smtp_["max_sessions"],
        smtp_max_sessions_per_address=smtp_["max_sessions_per_address"],
        smtp_idle_seconds=float(smtp_["idle_seconds"]),
        smtp_data_seconds=float(smtp_["data_seconds"]),
        http_host=http_["host"],
        http_port=http_["port"],
        relay=relay,
        mails_per_hour=gateway["mails_per_hour"],
        requests_per_sender_hour=gateway["requests_per_sender_hour"],
        attachments_max_mb=float(gateway["attachments_max_mb"]),
        attachment_link_days=gateway["attachment_link_days"],
        sweep_seconds=float(gateway["sweep_seconds"]),
        requeue_seconds=float(gateway["requeue_seconds"]),
        clock_file=home / str(section["clock_file"]) if section.get("clock_file") else None,
        mailboxes=mailboxes,
        quote_validity_days=orders_["quote_validity_days"],
        api_key=str(orders_.values.get("api_key", section.get("api_key", ""))),
        payment_provider=payments_["provider"],
        default_payment_method=payments_["default_method"],
        stripe_api_key=payments_["stripe_api_key"],
        stripe_api_base=payments_["stripe_api_base"],
        bank_details=_bank_details(payments_["bank_details"], str(path)),
        stripe_webhook_secret=payments_["stripe_webhook_secret"],
        plans=_plans(raw.get("plans", []), str(path)),
        retry_days=tuple(sorted(_Section("subscriptions", raw.get("subscriptions", {}))["retry_days"])),
    )
