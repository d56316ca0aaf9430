"""The IMAP poller against a real Dovecot (Debian's ``dovecot-imapd``), started per module.

Each test has its own folder on the one server and its own SQLite database; it polls
by hand (``poll_once``) or runs the poller thread, then processes what was stored
through the real pipeline, so "becomes a request" and "no duplicate" are what a
coordinator would see.
"""

from __future__ import annotations

import imaplib
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import Gateway, free_port, mail, write_home
from imapclient import IMAPClient
from sqlalchemy import func, select

from gateway.context import Context, open_context
from gateway.intake.admission import accept
from gateway.intake.imap import ImapPoller, start_pollers
from gateway.models import ImapState, Inbound, Request
from gateway.pipeline.process import Outcome, process
from gateway.service.broker import configure
from gateway.settings import ImapSettings, Mailbox, Settings

pytestmark = pytest.mark.dovecot

DOVECOT = Path("/usr/sbin/dovecot")
USER, PASSWORD = "test", "secret"
SUPPORT = "support@shop.example"
_folders = itertools.count(1)


class Dovecot:
    """A throwaway Dovecot master (RECIPES.md): its own short temp dir, a free port, one user."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dc", dir="/tmp"))
        self.root.chmod(0o755)  # the auth process runs as the dovecot user and reads D/users
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        mail_root = self.root / "mail"
        mail_root.mkdir()
        os.chown(mail_root, 65534, 65534)
        (self.root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:65534:65534::{mail_root}/{USER}::\n")
        (self.root / "dovecot.conf").write_text(_CONFIG.format(root=self.root, port=self.port))

    def start(self) -> None:
        self.process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(self.root / "dovecot.conf")],
                                        start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    if probe.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        raise AssertionError("dovecot did not greet:\n" + (self.root / "dovecot.log").read_text())

    def stop(self) -> None:
        """Master first, then its process group: sessions of clients still connected would linger."""
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(timeout=10)
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.process = None

    def client(self) -> IMAPClient:
        client = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=10)
        try:
            client.login(USER, PASSWORD)
        except Exception:  # its socket closed now, not by the collector in some later test
            client.shutdown()
            raise
        return client

    def cut_connections(self) -> None:
        """Kill every IMAP session process, as a crashed server or a dropped link would."""
        assert self.process is not None
        children = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(self.process.pid)],
                                  capture_output=True, text=True, check=True).stdout.split("\n")
        sessions = [int(line.split()[0]) for line in children if line.split()[1:] == ["imap"]]
        assert sessions, "no IMAP session to cut"
        for pid in sessions:
            os.kill(pid, signal.SIGKILL)
        for pid in sessions:  # dead (a zombie, or reaped): its socket is closed
            while Path(f"/proc/{pid}/stat").exists() and ") Z" not in _read(f"/proc/{pid}/stat"):
                time.sleep(0.01)


_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    if not DOVECOT.exists():
        reason = f"{DOVECOT} is missing: apt-get install -y dovecot-imapd"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def folder(dovecot: Dovecot) -> str:
    """A folder of its own for each test, so no test sees another's mail."""
    name = f"Test{next(_folders)}"
    with dovecot.client() as client:
        client.create_folder(name)
    return name


@pytest.fixture
def site(tmp_path: Path, dovecot: Dovecot, folder: str) -> Iterator[Context]:
    """A gateway whose helpdesk mailbox is fed by the test's folder (SQLite, in-process broker)."""
    imap = ImapSettings(host="127.0.0.1", port=dovecot.port, user=USER, password=PASSWORD, folder=folder,
                        tls=False, poll_seconds=300)
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", secret_key="imap-test",
                        mailboxes=(Mailbox(SUPPORT, "helpdesk", imap=imap), Mailbox("orders@shop.example", "orders")))
    configure(settings)
    context = open_context(settings)
    yield context
    context.engine.dispose()


@pytest.fixture
def make_poller(site: Context) -> Iterator[Callable[..., ImapPoller]]:
    """Pollers for the test's mailbox, all stopped (logged out) at the end."""
    made: list[ImapPoller] = []

    def make(poll_seconds: float = 300, **options: Any) -> ImapPoller:
        mailbox = site.settings.mailboxes[0]
        assert mailbox.imap is not None
        mailbox = replace(mailbox, imap=replace(mailbox.imap, poll_seconds=poll_seconds))
        poller = ImapPoller(site, mailbox, **options)
        made.append(poller)
        return poller

    yield make
    for poller in made:
        poller.stop()


def append(dovecot: Dovecot, folder: str, subject: str, *, message_id: str | None = None,
           flags: tuple[bytes, ...] = ()) -> bytes:
    raw = mail("customer@client.example", SUPPORT, subject, f"Body of {subject}.",
               **({"message_id": message_id} if message_id else {})).as_bytes()
    with dovecot.client() as client:
        client.append(folder, raw, flags=flags)
    return raw


def server_flags(dovecot: Dovecot, folder: str) -> dict[int, set[bytes]]:
    with dovecot.client() as client:
        client.select_folder(folder, readonly=True)
        return {uid: set(flags) - {b"\\Recent"} for uid, flags in client.get_flags(client.search("ALL")).items()}


def process_pending(context: Context) -> list[Outcome]:
    """Run the pipeline on every stored message, as the worker would."""
    with context.sessions() as session:
        pending = session.scalars(select(Inbound.id).where(Inbound.status == "pending").order_by(Inbound.id)).all()
    return [process(context, inbound_id) for inbound_id in pending]


def request_subjects(context: Context) -> list[str]:
    with context.sessions() as session:
        return sorted(session.scalars(select(Request.subject)).all())


def stored_count(context: Context) -> int:
    with context.sessions() as session:
        return int(session.scalar(select(func.count(Inbound.id))) or 0)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.05)


def test_mail_appended_to_the_folder_is_stored_and_becomes_a_request(
        dovecot: Dovecot, folder: str, site: Context, make_poller: Callable[..., ImapPoller],
        caplog: pytest.LogCaptureFixture) -> None:
    append(dovecot, folder, "Broken kettle")
    append(dovecot, folder, "Where is my parcel")
    caplog.set_level(logging.INFO, logger="gateway.imap")

    assert make_poller().poll_once() == 2

    with site.sessions() as session:
        rows = session.scalars(select(Inbound).order_by(Inbound.id)).all()
    assert [(r.source, r.mailbox, r.envelope_to) for r in rows] == [("imap", SUPPORT, f'["{SUPPORT}"]')] * 2
    assert [o.status for o in process_pending(site)] == ["processed", "processed"]
    assert request_subjects(site) == ["Broken kettle", "Where is my parcel"]
    assert f"imap {SUPPORT}: UID 1 stored as message {rows[0].id}" in caplog.messages


def test_the_first_poll_of_a_folder_leaves_the_mail_a_person_already_read(
        dovecot: Dovecot, folder: str, site: Context, make_poller: Callable[..., ImapPoller]) -> None:
    append(dovecot, folder, "Answered last year", flags=(b"\\Seen",))
    append(dovecot, folder, "Still waiting")

    assert make_poller().poll_once() == 1

    process_pending(site)
    assert request_subjects(site) == ["Still waiting"]
    assert server_flags(dovecot, folder) == {1: {b"\\Seen"}, 2: {b"\\Seen", b"$Gateway"}}


def test_the_server_message_is_flagged_only_after_it_is_stored(
        dovecot: Dovecot, folder: str, site: Context, make_poller: Callable[..., ImapPoller],
        monkeypatch: pytest.MonkeyPatch) -> None:
    append(dovecot, folder, "Flag me later")
    flags_around_store: list[set[bytes]] = []

    def watching_accept(*args: Any, **kwargs: Any) -> int:
        flags_around_store.append(server_flags(dovecot, folder)[1])
        inbound_id = accept(*args, **kwargs)
        assert stored_count(site) == 1
        flags_around_store.append(server_flags(dovecot, folder)[1])
        return inbound_id

    monkeypatch.setattr("gateway.intake.imap.accept", watching_accept)
    assert make_poller().poll_once() == 1

    assert flags_around_store == [set(), set()], "fetching must not mark the message, nor storing it"
    assert server_flags(dovecot, folder) == {1: {b"\\Seen", b"$Gateway"}}


def test_a_second_poll_stores_nothing_new(dovecot: Dovecot, folder: str, site: Context,
                                          make_poller: Callable[..., ImapPoller]) -> None:
    append(dovecot, folder, "First")
    poller = make_poller()
    assert poller.poll_once() == 1
    assert poller.poll_once() == 0
    append(dovecot, folder, "Second", flags=(b"\\Seen",))  # read by a person before the poll: still new

    assert poller.poll_once() == 1
    assert poller.poll_once() == 0
    with site.sessions() as session:
        state = session.scalars(select(ImapState)).one()
    assert (state.mailbox, state.folder, state.last_uid) == (SUPPORT, folder, 2)
    assert stored_count(site) == 2


def test_idle_picks_up_a_message_appended_from_another_connection(
        dovecot: Dovecot, folder: str, site: Context, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="imapclient")  # the commands the poller sends
    pollers = start_pollers(site)  # poll_seconds is 300: only IDLE can bring the mail in time
    try:
        assert [p.mailbox.address for p in pollers] == [SUPPORT]
        wait_until(lambda: _state(site) is not None)  # its first poll is done; it is idling
        append(dovecot, folder, "Sent while idling")
        wait_until(lambda: stored_count(site) == 1)
    finally:
        for poller in pollers:
            poller.stop()

    assert not [t for t in threading.enumerate() if t.name == f"imap-{SUPPORT}"]
    said = [r.getMessage() for r in caplog.records if r.threadName == f"imap-{SUPPORT}"]
    assert any(" DONE" in line for line in said) and any(" LOGOUT" in line for line in said), \
        "stop() leaves IDLE and logs out rather than hanging up"
    process_pending(site)
    assert request_subjects(site) == ["Sent while idling"]


def test_a_uidvalidity_change_neither_loses_nor_duplicates_requests(
        dovecot: Dovecot, folder: str, site: Context, make_poller: Callable[..., ImapPoller]) -> None:
    ids = {subject: f"<{subject.lower()}-{folder}@client.example>" for subject in ("Kept", "Lost flags", "New")}
    originals = {s: append(dovecot, folder, s, message_id=ids[s]) for s in ("Kept", "Lost flags")}
    before = make_poller()
    assert before.poll_once() == 2
    before.stop()
    old_state = _state(site)
    # The folder is rebuilt (a migration): one message keeps its keyword, one loses its flags, one is new.
    with dovecot.client() as client:
        client.delete_folder(folder)
        client.create_folder(folder)
        client.append(folder, originals["Kept"], flags=(b"\\Seen", b"$Gateway"))
        client.append(folder, originals["Lost flags"])
    append(dovecot, folder, "New", message_id=ids["New"])

    assert make_poller().poll_once() == 2, "the one with $Gateway is skipped"

    new_state = _state(site)
    assert old_state and new_state and new_state[0] != old_state[0], "Dovecot gave the new folder a new UIDVALIDITY"
    outcomes = process_pending(site)
    assert sorted(o.status for o in outcomes) == ["duplicate", "processed", "processed", "processed"]
    assert request_subjects(site) == ["Kept", "Lost flags", "New"]
    assert all(flags >= {b"\\Seen", b"$Gateway"} for flags in server_flags(dovecot, folder).values())


def test_a_connection_cut_mid_fetch_loses_nothing_and_creates_no_duplicate_request(
        dovecot: Dovecot, folder: str, site: Context, make_poller: Callable[..., ImapPoller],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for subject in ("One", "Two", "Three"):
        append(dovecot, folder, subject)
    calls = itertools.count(1)

    def accept_then_cut(*args: Any, **kwargs: Any) -> int:
        inbound_id = accept(*args, **kwargs)
        if next(calls) == 2:  # "Two" is stored, not yet flagged
            dovecot.cut_connections()
        return inbound_id

    monkeypatch.setattr("gateway.intake.imap.accept", accept_then_cut)
    poller = make_poller()
    with pytest.raises((OSError, imaplib.IMAP4.error)):
        poller.poll_once()
    assert server_flags(dovecot, folder) == {1: {b"\\Seen", b"$Gateway"}, 2: set(), 3: set()}

    assert poller.poll_once() == 2, "Two again, then Three"

    outcomes = process_pending(site)
    assert [o.status for o in outcomes] == ["processed", "processed", "duplicate", "processed"]
    assert request_subjects(site) == ["One", "Three", "Two"]
    assert all(flags == {b"\\Seen", b"$Gateway"} for flags in server_flags(dovecot, folder).values())


def test_the_poller_reconnects_after_dovecot_restarts(
        dovecot: Dovecot, folder: str, site: Context, make_poller: Callable[..., ImapPoller],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.imap")
    # A short poll_seconds: Dovecot can miss telling an IDLE that has just begun (its own
    # fallback check is every 30 s); the poll that ends each IDLE is the poller's safety net.
    poller = make_poller(poll_seconds=1, min_backoff=0.1, max_backoff=0.5)
    poller.start()
    wait_until(lambda: _state(site) is not None)

    dovecot.stop()
    wait_until(lambda: any("reconnecting" in m for m in caplog.messages))
    dovecot.start()
    wait_until(lambda: sum("connected (IDLE)" in m for m in caplog.messages) == 2)
    append(dovecot, folder, "After the restart")

    wait_until(lambda: stored_count(site) == 1)
    poller.stop()
    process_pending(site)
    assert request_subjects(site) == ["After the restart"]


def _state(context: Context) -> tuple[int, int] | None:
    with context.sessions() as session:
        row = session.scalars(select(ImapState)).first()
        return (row.uidvalidity, row.last_uid) if row else None


class CuttingProxy:
    """A TCP relay in front of Dovecot that, once armed, cuts the link in the middle of the first
    message body it carries (``BODY[] {size}`` and ``after`` bytes of it), as a dropped line would."""

    def __init__(self, upstream: int, after: int) -> None:
        self.upstream, self.after = upstream, after
        self.armed, self.cuts = True, 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        seen, body_at = b"", -1
        try:
            while data := source.recv(16384):
                if from_server and self.armed:
                    seen += data
                    body_at = seen.find(b"BODY[] {") if body_at < 0 else body_at
                    if body_at >= 0 and len(seen) - body_at > self.after:
                        sink.sendall(data[:max(0, len(data) - (len(seen) - body_at - self.after))])
                        self.armed, self.cuts = False, self.cuts + 1
                        break
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            end.close()

    def close(self) -> None:
        self.server.close()


def test_gateway_serve_cut_from_imap_mid_fetch_loses_nothing_and_applies_each_once(
        tmp_path: Path, dovecot: Dovecot, folder: str) -> None:
    """End to end: ``gateway serve`` polls through a link that drops 50 KB into a 300 KB message;
    it reconnects by itself, and each message becomes one request, flagged once on the server."""
    proxy = CuttingProxy(dovecot.port, after=50_000)
    big = mail("marie@client.example", "imap@shop.example", "Gros devis", "ligne de devis\n" * 20_000).as_bytes()
    with dovecot.client() as client:
        client.append(folder, mail("paul@client.example", "imap@shop.example", "Avant", "Bonjour").as_bytes())
        client.append(folder, big)
        client.append(folder, mail("lea@client.example", "imap@shop.example", "Après", "Bonjour").as_bytes())
    imap = (f'imap = {{ host = "127.0.0.1", port = {proxy.port}, user = "{USER}", password = "{PASSWORD}", '
            f'folder = "{folder}", tls = false, poll_seconds = 1 }}')
    gw = Gateway(write_home(tmp_path / "home", sections=f'[[mailboxes]]\naddress = "imap@shop.example"\n'
                            f'kind = "helpdesk"\n{imap}\n')).start()
    try:
        deadline = time.monotonic() + 60
        while len(gw.requests()) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        gw.wait_idle()
        assert proxy.cuts == 1, "the link was cut in the middle of the big message"
        assert sorted(r["subject"] for r in gw.requests()) == ["Après", "Avant", "Gros devis"]
        assert "reconnecting" in gw.log.read_text()
        assert all(flags == {b"\\Seen", b"$Gateway"} for flags in server_flags(dovecot, folder).values())
        assert gw.count("SELECT count(*) FROM inbound") == 3, "the cut message was stored once"
        whole = len(big.replace(b"\n", b"\r\n"))  # as IMAP serves it
        assert gw.count(f"SELECT count(*) FROM inbound WHERE size = {whole}") == 1, "and whole"
    finally:
        assert gw.stop() == 0
        proxy.close()
