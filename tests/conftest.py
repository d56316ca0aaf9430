"""Fixtures that run the real thing: ``gateway serve`` as a subprocess, PostgreSQL, Redis.

An integration test whose server is missing fails in CI (``CI=true``) and is skipped,
with the reason, only on a laptop.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.orm import Session

from gateway import db
from gateway.context import Context
from gateway.notify import Mailer
from gateway.transaction import mailing

GATEWAY = [sys.executable, "-m", "gateway"]
POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def need_server(port: int, what: str) -> None:
    """Fail in CI, skip elsewhere, when a service the test needs does not answer."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        message = f"{what} does not answer on 127.0.0.1:{port} (`./dev test` starts it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different free ports: the probes are held together, so the system cannot hand the same
    port twice (one after the other, it did: a gateway's SMTP and web ports were once the same)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def write_home(home: Path, *, database_url: str = "", broker_url: str = "", extra: str = "",
               sections: str = "", include_supplier: bool = False, orders_mailbox: str = "") -> Path:
    """A site home with a helpdesk and an orders mailbox; ``extra`` goes into [gateway], ``orders_mailbox``
    into the orders mailbox's table, ``sections`` after."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "gateway.toml"
    config.write_text(f"""
[gateway]
domain = "shop.example"
secret_key = "test-secret-{uuid.uuid4().hex}"
data_dir = "var"
database_url = "{database_url}"
broker_url = "{broker_url}"
broker_namespace = "gw-{uuid.uuid4().hex[:8]}"
site_name = "Boutique Test"
{extra}

[[mailboxes]]
address = "support@shop.example"
kind = "helpdesk"
include_supplier = {"true" if include_supplier else "false"}

[[mailboxes]]
address = "orders@shop.example"
kind = "orders"
{orders_mailbox}

{sections}
""")
    return config


def mail(sender: str, to: str, subject: str, body: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = headers.pop("message_id", f"<{uuid.uuid4().hex}@client.example>")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return message


def children(pid: int) -> list[int]:
    """The processes ``pid`` started, from any of its threads."""
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie waiting for its parent does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Gateway:
    """One ``gateway serve`` process and the ways a test talks to it: SMTP, its outbox, its CLI."""

    def __init__(self, config: Path, database_url: str = "") -> None:
        self.config = config
        self.home = config.parent
        self.data = self.home / "var"
        self.smtp_port, self.http_port = free_ports(2)
        self.env = {**os.environ, "GATEWAY_CONFIG": str(config), "PYTHONUNBUFFERED": "1"}
        self.database_url = database_url or f"sqlite:///{self.data / 'gateway.db'}"
        self.process: subprocess.Popen[str] | None = None
        self.log = self.home / "serve.log"

    def start(self) -> Gateway:
        """Start ``gateway serve``; when another process took one of its free ports between the probe and
        the bind (tests run side by side, and every outgoing connection takes a port too), on new ports."""
        for _ in range(3):
            before = len(self.log.read_text()) if self.log.exists() else 0
            handle = self.log.open("a")
            self.process = subprocess.Popen(
                [*GATEWAY, "serve", "--smtp-port", str(self.smtp_port), "--http-port", str(self.http_port)],
                cwd=self.home, env=self.env, stdout=handle, stderr=subprocess.STDOUT, text=True)
            handle.close()
            deadline = time.monotonic() + 30
            while "SMTP on" not in (said := self.log.read_text()[before:]) or not answers(self.http_port):
                if self.process.poll() is not None and "Address already in use" in said:
                    self.smtp_port, self.http_port = free_ports(2)
                    break
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("gateway serve did not start:\n" + self.log.read_text())
                time.sleep(0.05)
            else:
                return self
        raise AssertionError("gateway serve found no free port:\n" + self.log.read_text())

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.process = None
        return code

    def children(self) -> list[int]:
        """The processes ``gateway serve`` started: the SMTP listener, the processor."""
        assert self.process is not None
        return children(self.process.pid)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*GATEWAY, *args], cwd=self.home, env=self.env, capture_output=True, text=True,
                                timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"gateway {' '.join(args)} exited {result.returncode}: {result.stderr}")
        return result

    def add_person(self, email_address: str, role: str, locale: str = "fr") -> None:
        self.cli("people", "add", email_address, "--role", role, "--locale", locale)

    def send(self, message: Message | bytes, recipients: list[str] | None = None, sender: str = "") -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            if isinstance(message, bytes):
                client.sendmail(sender or "someone@client.example", recipients or [], message)
            else:
                client.send_message(message, to_addrs=recipients)

    def count(self, sql: str) -> int:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(sql)).scalar_one())
        finally:
            engine.dispose()

    def wait_idle(self, timeout: float = 30) -> None:
        """Until every stored message is processed and every outbox row is sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # In the order work moves: acknowledged file, inbound row (or quote decision), outbox rows.
            received = self.data / "incoming"
            pending = len(list(received.glob("*.eml"))) if received.is_dir() else 0
            pending += self.count("SELECT count(*) FROM inbound WHERE status = 'pending'")
            pending += self.count("SELECT count(*) FROM quotes WHERE status IN ('accepted', 'declined') "
                                  "AND followed_up_at IS NULL")
            pending += self.count("SELECT count(*) FROM outbox WHERE status = 'pending'")
            if pending == 0:
                return
            time.sleep(0.05)
        raise AssertionError("the gateway did not finish its work in time:\n" + self.log.read_text()[-3000:])

    def outbox(self) -> list[EmailMessage]:
        """Every mail written to the outbox Maildir, oldest first."""
        folder = self.data / "outbox" / "new"
        if not folder.is_dir():
            return []
        files = sorted(folder.iterdir(), key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
                for p in files]

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.outbox() if m["To"] == address]

    def reply(self, sender: str, notification: EmailMessage, body: str) -> None:
        """``sender`` answers ``notification`` from their mail client, to its Reply-To."""
        self.send(mail(sender, reply_address(notification), f"Re: {notification['Subject']}", body,
                       In_Reply_To=str(notification["Message-ID"])))
        self.wait_idle()

    def show(self, number: int) -> dict[str, Any]:
        return dict(json.loads(self.cli("requests", "show", str(number), "--json").stdout))

    def requests(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("requests", "list", "--json").stdout))


def reply_address(message: EmailMessage) -> str:
    value = str(message["Reply-To"])
    match = re.search(r"[\w.+-]+@[\w.-]+", value)
    assert match, value
    return match.group(0)


def body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database brought to the newest revision by the real migrations, once per test process."""
    path = tmp_path_factory.mktemp("migrated") / "gateway.db"
    engine = create_engine(f"sqlite:///{path}")
    db.migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(autouse=True)
def new_sqlite_databases_start_migrated(monkeypatch: pytest.MonkeyPatch, migrated_sqlite: Path) -> None:
    """A new SQLite database that a test opens in its own process (``open_context``) starts as a copy of
    ``migrated_sqlite``, made by SQLite's backup, instead of running every migration again: half a second
    of CPU each on a slow VM, for hundreds of tests. The migrations themselves are tested where they are
    called directly (``test_migrations.py``, ``db.migrate``), and every process a test starts (``gateway
    serve``, the CLI) runs them for real."""
    def migrate(engine: Engine) -> None:
        if engine.dialect.name != "sqlite" or inspect(engine).get_table_names():
            db.migrate(engine)
            return
        connection = engine.raw_connection()
        try:
            with closing(sqlite3.connect(migrated_sqlite)) as source:  # ``with`` alone would only commit
                source.backup(connection.driver_connection)  # type: ignore[arg-type]
        finally:
            connection.close()

    monkeypatch.setattr("gateway.context.migrate", migrate)


@pytest.fixture
def session_and_mailer(context: Context) -> Iterator[tuple[Session, Mailer]]:
    """A transaction whose mails are written when the test ends, as ``mailing`` writes them (``context``
    is the test module's own)."""
    with mailing(context) as (session, mailer):
        yield session, mailer


@pytest.fixture
def session(session_and_mailer: tuple[Session, Mailer]) -> Session:
    return session_and_mailer[0]


@pytest.fixture
def mailer(session_and_mailer: tuple[Session, Mailer]) -> Mailer:
    return session_and_mailer[1]


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    """A running gateway on the embedded default (SQLite, in-process worker, Maildir outbox)."""
    running = Gateway(write_home(tmp_path / "home")).start()
    yield running
    if running.process is not None:
        assert running.stop() == 0


TRUSTED_MTA = "mx.shop.example"  # the authserv-id of the site's own MTA, in [smtp] trusted_authserv_id


@pytest.fixture
def vouched_shop(tmp_path: Path) -> Iterator[Gateway]:
    """A running gateway that trusts the Authentication-Results of ``TRUSTED_MTA``; Alice and Bob coordinate."""
    running = Gateway(write_home(tmp_path / "home",
                                 sections=f'[smtp]\ntrusted_authserv_id = "{TRUSTED_MTA}"\n')).start()
    running.add_person("alice@shop.example", "coordinator", "en")
    running.add_person("bob@shop.example", "coordinator", "en")
    yield running
    if running.process is not None:
        assert running.stop() == 0


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    need_server(5432, "PostgreSQL")
    name = f"gw_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_url() -> str:
    need_server(6379, "Redis")
    return REDIS_URL
