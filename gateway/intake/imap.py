"""The IMAP edge: one poller per mailbox with ``imap = {...}``; it stores new mail and marks it, nothing more.

The order of each step is what keeps mail safe (DESIGN, "Mail handling rules"):
the message is fetched with ``BODY.PEEK[]`` (fetching alone marks nothing), stored
through ``accept`` like SMTP mail, and only once the store is committed is it
flagged ``\\Seen`` and ``$Gateway`` on the server and ``last_uid`` advanced. A cut
anywhere loses nothing: a message stored but not yet flagged is fetched again and
the pipeline's duplicate detection (one Message-ID per mailbox) drops the copy.

New mail is the UIDs above ``ImapState.last_uid``. When the gateway cannot trust
its UIDs (the first poll of a folder, or a UIDVALIDITY change after a migration or
a rebuilt folder) it takes the unread messages that lack ``$Gateway``: what it
handled before carries the keyword or is a duplicate, and years of mail a person
already read do not become a flood of new requests.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
import threading
import time
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from typing import Any

from imapclient import IMAPClient, SocketTimeout
from sqlalchemy import select

from gateway.context import Context
from gateway.intake.admission import accept
from gateway.logs import about
from gateway.mail.headers import POLICY
from gateway.models import ImapState
from gateway.settings import ImapSettings, Mailbox
from gateway.writer import writer

log = logging.getLogger("gateway.imap")

KEYWORD = b"$Gateway"
SEEN = b"\\Seen"
# How often a waiting poller looks at its stop flag: bounds how long ``stop()`` takes.
_TICK = 0.5
# UIDs per FETCH of sizes: keeps command lines short on a folder with years of mail.
_BATCH = 200
_TIMEOUT = SocketTimeout(connect=15, read=120)
_CONNECTION_ERRORS = (OSError, imaplib.IMAP4.error)


class ImapPoller:
    """Watches one mailbox's IMAP folder and feeds what arrives into ``accept``.

    The connection belongs to one thread: the poller's own once ``start()`` ran,
    else the caller of ``poll_once()`` (tests and one-shot use).
    """

    def __init__(self, context: Context, mailbox: Mailbox, *, min_backoff: float = 1.0,
                 max_backoff: float = 300.0) -> None:
        if mailbox.imap is None:
            raise ValueError(f"mailbox {mailbox.address} has no imap settings")
        self.context = context
        self.mailbox = mailbox
        self.imap: ImapSettings = mailbox.imap
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._client: IMAPClient | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._marks = [SEEN, KEYWORD]

    @property
    def name(self) -> str:
        imap = self.imap
        return f"{self.mailbox.address} ({imap.user}@{imap.host}:{imap.port}/{imap.folder})"

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        """Run the watch loop in a daemon thread: a stuck server must never keep the process alive."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"the IMAP poller of {self.mailbox.address} is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name=f"imap-{self.mailbox.address}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop promptly: the thread finishes the message in hand, leaves IDLE and logs out."""
        self._stopping.set()
        thread = self._thread
        if thread is None:
            self._disconnect()
            return
        thread.join(timeout=8 * _TICK)
        if thread.is_alive():
            # Blocked on a silent server: closing the socket's both ways wakes the read.
            self._interrupt()
            thread.join(timeout=timeout)
        if thread.is_alive():
            log.warning("imap %s: poller thread did not stop within %.0f s", self.name, timeout)
        self._thread = None

    def _run(self) -> None:
        backoff = self.min_backoff
        while not self._stopping.is_set():
            try:
                self.poll_once()
                backoff = self.min_backoff
                self._wait_for_news()
            except Exception as error:
                self._drop()
                if self._stopping.is_set():
                    break
                if isinstance(error, _CONNECTION_ERRORS):
                    log.warning("imap %s: %s: %s; reconnecting in %.1f s", self.name, type(error).__name__,
                                error, backoff)
                else:
                    log.exception("imap %s: unexpected error; reconnecting in %.1f s", self.name, backoff)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
        self._disconnect()

    def _wait_for_news(self) -> None:
        """Until something changes (IDLE) or ``poll_seconds`` pass, whichever comes first.

        Any wake-up ends the wait: new mail, a BYE, or a dead socket, which the poll
        that follows turns into an error and so into a reconnect.
        """
        if self._stopping.is_set():
            return
        client = self._connected()
        deadline = time.monotonic() + self.imap.poll_seconds
        if not client.has_capability("IDLE"):
            self._stopping.wait(self.imap.poll_seconds)
            return
        client.idle()
        try:
            while not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                tick = min(_TICK, remaining)
                began = time.monotonic()
                if client.idle_check(timeout=tick) or time.monotonic() - began < tick / 2:
                    return
        finally:
            client.idle_done()

    # -- one poll ------------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Store what is new in the folder; returns how many messages were stored.

        A connection error leaves the connection closed and propagates: the caller
        (the watch loop, or a test) decides when to try again.
        """
        try:
            client = self._connected()
            folder = client.select_folder(self.imap.folder)
            self._marks = self._processed_marks(folder)
            uidvalidity = int(folder[b"UIDVALIDITY"])
            known = self._state()
            if known is not None and known[0] == uidvalidity:
                return self._import_new(client, uidvalidity, known[1])
            return self._rescan(client, folder, uidvalidity, known)
        except _CONNECTION_ERRORS:
            self._drop()
            raise

    def _processed_marks(self, folder: dict[bytes, Any]) -> list[bytes]:
        """``\\Seen`` and ``$Gateway``, or ``\\Seen`` alone where the server keeps no keywords.

        Without PERMANENTFLAGS every flag is permanent (RFC 3501 §7.1); ``\\*`` allows new keywords.
        """
        permanent = folder.get(b"PERMANENTFLAGS")
        if permanent is None or b"\\*" in permanent or KEYWORD in permanent:
            return [SEEN, KEYWORD]
        if KEYWORD in self._marks:
            log.warning("imap %s: the server keeps no keywords: marking processed mail \\Seen only", self.name)
        return [SEEN]

    def _import_new(self, client: IMAPClient, uidvalidity: int, last_uid: int) -> int:
        found = client.search(["UID", f"{last_uid + 1}:*", "NOT", "KEYWORD", KEYWORD.decode()])
        # "N:*" names the last message even when its UID is below N (RFC 3501 §6.4.8).
        return self._import(client, sorted(uid for uid in found if uid > last_uid), advance_in=uidvalidity)

    def _rescan(self, client: IMAPClient, folder: dict[bytes, Any], uidvalidity: int,
                known: tuple[int, int] | None) -> int:
        """Our UIDs mean nothing here: take unread mail without ``$Gateway``, then trust UIDs again."""
        if known is None:
            log.info("imap %s: first poll of this folder: importing unread mail", self.name)
        else:
            log.warning("imap %s: UIDVALIDITY changed from %s to %s: importing unread mail without %s",
                        self.name, known[0], uidvalidity, KEYWORD.decode())
        highest = int(folder.get(b"UIDNEXT", 0)) - 1
        if highest < 0:
            highest = max(client.search(["ALL"]), default=0)
        found = sorted(client.search(["UNSEEN", "NOT", "KEYWORD", KEYWORD.decode()]))
        stored = self._import(client, found, advance_in=None)
        # Only once all is in: a cut or a stop during the rescan leaves the old UIDVALIDITY,
        # so the rescan runs again (and skips what it flagged).
        if not self._stopping.is_set():
            self._save_state(uidvalidity, max([highest, *found]))
        return stored

    def _import(self, client: IMAPClient, uids: list[int], *, advance_in: int | None) -> int:
        """Fetch, store, then flag each message in UID order.

        With ``advance_in`` (the folder's UIDVALIDITY), ``last_uid`` moves past each
        message as soon as it is flagged, so a cut costs at most one refetch.
        """
        limit = self.context.settings.max_message_size
        stored = 0
        for start in range(0, len(uids), _BATCH):
            batch = uids[start:start + _BATCH]
            sizes = client.fetch(batch, ["RFC822.SIZE"])
            for uid in batch:
                if self._stopping.is_set():
                    return stored
                if uid not in sizes:
                    pass  # expunged since the search: nothing to keep
                elif int(sizes[uid].get(b"RFC822.SIZE", 0)) > limit:
                    log.warning("imap %s: UID %s is over the %s-byte limit: left on the server, unread",
                                self.name, uid, limit)
                elif self._store_and_flag(client, uid):
                    stored += 1
                if advance_in is not None:
                    self._save_state(advance_in, uid)
        return stored

    def _store_and_flag(self, client: IMAPClient, uid: int) -> bool:
        fetched = client.fetch([uid], ["BODY.PEEK[]"]).get(uid)
        if fetched is None or b"BODY[]" not in fetched:
            return False
        raw = bytes(fetched[b"BODY[]"])
        inbound_id = accept(self.context, raw, source="imap", mailbox=self.mailbox.address,
                            envelope_from=_return_path(raw), envelope_to=(self.mailbox.address,))
        # Stored and committed: only now may the server learn that we have it.
        client.add_flags([uid], self._marks, silent=True)
        log.info("imap %s: UID %s stored as message %s", self.mailbox.address, uid, inbound_id,
                 extra=about(inbound_id))
        return True

    # -- state ---------------------------------------------------------------------------------

    def _state(self) -> tuple[int, int] | None:
        """``(uidvalidity, last_uid)`` for this mailbox and folder, or None before the first poll."""
        with self.context.sessions() as session:
            row = session.scalars(select(ImapState).where(ImapState.mailbox == self.mailbox.address,
                                                          ImapState.folder == self.imap.folder)).first()
            return (row.uidvalidity, row.last_uid) if row is not None and row.uidvalidity else None

    def _save_state(self, uidvalidity: int, last_uid: int) -> None:
        with writer(self.context, background=True), self.context.sessions.begin() as session:
            row = session.scalars(select(ImapState).where(ImapState.mailbox == self.mailbox.address,
                                                          ImapState.folder == self.imap.folder)).first()
            if row is None:
                row = ImapState(mailbox=self.mailbox.address, folder=self.imap.folder)
                session.add(row)
            row.uidvalidity, row.last_uid = uidvalidity, max(last_uid, 0)

    # -- the connection ------------------------------------------------------------------------

    def _connected(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        settings = self.imap
        context = ssl.create_default_context() if settings.tls else None
        client = IMAPClient(settings.host, port=settings.port, ssl=settings.tls, ssl_context=context,
                            timeout=_TIMEOUT)
        try:
            client.login(settings.user, settings.password)
        except BaseException:
            _close(client)
            raise
        self._client = client
        mode = "IDLE" if client.has_capability("IDLE") else f"polling every {settings.poll_seconds:g} s"
        log.info("imap %s: connected (%s)", self.name, mode)
        return client

    def _disconnect(self) -> None:
        """Log out politely; a connection already dead is just closed."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except Exception:
            _close(client)

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _close(client)

    def _interrupt(self) -> None:
        client = self._client
        if client is not None:
            try:
                client.socket().shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _close(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except OSError:
        pass


def _return_path(raw: bytes) -> str:
    """The envelope sender the delivering server recorded: IMAP's equivalent of SMTP's MAIL FROM."""
    header = BytesHeaderParser(policy=POLICY).parsebytes(raw).get("Return-Path", "")
    return parseaddr(str(header))[1]


def start_pollers(context: Context) -> list[ImapPoller]:
    """One running poller per mailbox that has ``imap`` settings; ``serve`` stops them at exit."""
    pollers = [ImapPoller(context, mailbox) for mailbox in context.settings.mailboxes if mailbox.imap]
    for poller in pollers:
        poller.start()
    return pollers
