"""``gateway check``: a home validated without starting anything, one finding a line.

The configuration, the mailboxes, the rules and the templates are read as every command reads them (a
mistake there stops the check with the file and line, as it would stop ``gateway serve``). Then what
the home needs around it: the data folder (writable, its free space), the database (reachable, at the
newest migration), the broker when one is set, and with ``--relay`` the relay's answer to EHLO.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import redis
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from jinja2 import TemplateSyntaxError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gateway.config_keys import masked_url
from gateway.db import MIGRATIONS, make_engine
from gateway.outbound.render import DEFAULTS, environment
from gateway.rules.loader import load_rules
from gateway.settings import ConfigError, Settings

LOW_SPACE = 1 << 30  # under a gigabyte free, mail may soon be refused (452 4.3.1)


@dataclass(frozen=True)
class Finding:
    check: str  # config, rules, templates, data, database, broker, relay
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.check}: {self.detail}"


def check_home(settings: Settings, *, relay: bool = False) -> list[Finding]:
    """Raises ``ConfigError`` or ``RuleFileError`` naming the file, line and reason of a broken rule or
    template; everything else is a finding."""
    rules = load_rules(settings.home)
    env = environment(settings.home)
    templates = 0
    for root in (settings.home / "templates", DEFAULTS):
        for path in sorted(root.rglob("*.j2")) if root.is_dir() else []:
            try:
                env.parse(path.read_text(encoding="utf-8"))
            except TemplateSyntaxError as error:
                raise ConfigError(f"{path}:{error.lineno}: {error.message}") from error
            templates += 1
    findings = [
        Finding("config", True, f"home {settings.home}, domain {settings.domain}, mailboxes "
                                f"{', '.join(m.address for m in settings.mailboxes)}"),
        Finding("rules", True, f"{len(rules)} rules"),
        Finding("templates", True, f"{templates} templates"),
        _data_folder(settings.data_dir),
        _database(settings),
        _links(settings.base_url),
    ]
    if settings.broker_url:
        findings.append(_broker(settings.broker_url))
    if relay:
        findings.append(_relay(settings))
    return findings


def as_json(findings: list[Finding]) -> list[dict[str, object]]:
    return [asdict(finding) for finding in findings]


def _links(base_url: str) -> Finding:
    """Every quote, order and customer-page link a mail carries starts with ``base_url``: one that only this
    machine reaches is fine for a trial and wrong for customers, so it is said (not a failure)."""
    try:
        host = urlsplit(base_url).hostname or ""
    except ValueError as error:  # "http://[::1": no address a mail client opens
        return Finding("links", False, f"base_url {base_url!r} is not a URL ({error})")
    local = host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.")
    return Finding("links", True, f"mails link to {base_url}" + (
        ": only this machine opens it; set base_url to the address customers reach the pages at"
        if local else ""))


def _data_folder(folder: Path) -> Finding:
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        return Finding("data", False, f"{existing} is not writable: the gateway could keep no mail in {folder}")
    free = shutil.disk_usage(existing).free
    made = "" if existing == folder else " (gateway serve creates it)"
    detail = f"{folder} writable{made}, {free / (1 << 30):.1f} GiB free"
    if free < LOW_SPACE:
        return Finding("data", False, detail + ": under 1 GiB, mail will soon be refused (452)")
    return Finding("data", True, detail)


def _database(settings: Settings) -> Finding:
    url = settings.db_url
    shown = masked_url(url)
    file = make_url(url).database if url.startswith("sqlite") else None
    if file and file != ":memory:" and not Path(file).exists():  # connecting would create it
        return Finding("database", True, f"{shown}: not created yet (gateway serve creates it)")
    scripts = ScriptDirectory(str(MIGRATIONS))
    head = scripts.get_current_head()
    try:
        engine = make_engine(settings)
    except ConfigError as error:  # the data folder: its own finding says more
        return Finding("database", False, f"{shown}: {error}")
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        return Finding("database", False, f"{shown}: unreachable: {reason}")
    finally:
        engine.dispose()
    if current == head:
        return Finding("database", True, f"{shown}: reachable, at the newest migration ({head})")
    if current is not None and current not in {script.revision for script in scripts.walk_revisions()}:
        return Finding("database", False, f"{shown}: at migration {current}, which this version does not know "
                                          "(a newer gateway migrated it): run that version, or restore a backup")
    return Finding("database", True, f"{shown}: reachable, at migration {current or 'none'}; gateway serve "
                                     f"brings it to {head}")


def _broker(url: str) -> Finding:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except (redis.RedisError, ValueError) as error:  # ValueError: not a Redis URL at all
        return Finding("broker", False, f"{masked_url(url)}: unreachable: {error}")
    return Finding("broker", True, f"{masked_url(url)}: reachable")


def _relay(settings: Settings) -> Finding:
    relay = settings.relay
    if relay is None:
        return Finding("relay", True, f"no [relay]: outgoing mail is written to {settings.data_dir / 'outbox'}")
    where = f"{relay.host}:{relay.port}"
    try:
        with smtplib.SMTP(relay.host, relay.port, timeout=10) as client:
            code, _ = client.ehlo(socket.getfqdn())
            starttls = client.has_extn("starttls")
    except (OSError, smtplib.SMTPException) as error:
        return Finding("relay", False, f"{where}: no answer to EHLO: {error}")
    offered = "STARTTLS offered" if starttls else "no STARTTLS offered"
    if code != 250:
        return Finding("relay", False, f"{where}: EHLO answered {code}")
    if relay.starttls and not starttls:
        return Finding("relay", False, f"{where}: EHLO answered, {offered}, but [relay] starttls = true")
    return Finding("relay", True, f"{where}: EHLO answered, {offered}")
