"""The SMTP edge: refuse at RCPT what is not ours, keep the message at DATA, answer 250. Nothing more.

It needs no database: the message is written to ``incoming/`` (see ``spool``) and
``on_stored`` is told the files, for the serving process to admit. Messages arriving
together are written together (``GroupWriter``), into spares made ahead (``spool.Spares``),
and named together.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.addresses import is_addr_spec
from gateway.clock import use_offset_file
from gateway.intake import spool
from gateway.logs import OncePerMinute, configure_logging
from gateway.revoked import Revoked
from gateway.settings import Settings
from gateway.tokens import verify_reply_token

log = logging.getLogger("gateway.smtp")

OK = "250 OK"
UNKNOWN_RECIPIENT = "550 5.1.1 no such mailbox here"
FORGED_TOKEN = "550 5.7.1 this reply address is not valid (bad signature)"
VOID_TOKEN = "550 5.7.1 this reply address is no longer valid: you were removed from this request"
TOO_BIG = "552 5.3.4 message exceeds the size limit of {limit} bytes"
STORAGE_FAILED = "451 4.3.0 could not store the message, try again later"
DISK_FULL = "452 4.3.1 insufficient system storage, try again later"
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)
BAD_SENDER = "553 5.1.7 the sender address is not one valid address"
TOO_MANY_RECIPIENTS = "452 4.5.3 too many recipients: at most {limit} a message"
TOO_MANY_SESSIONS = "421 4.7.0 too many connections, try again later"
TOO_MANY_FROM_YOU = "421 4.7.0 too many connections from your address, try again later"
DATA_TOO_SLOW = "421 4.4.2 the message took longer than {seconds:.0f} s to arrive, closing"
MAX_RECIPIENTS = 100  # RFC 5321 4.5.3.1.8: a server must take at least 100
MAX_REFUSED = 20
TOO_MANY_REFUSED = "421 4.7.0 too many refused recipients, closing"
# Commands that carry no mail: a session may send this many of each (Postfix's smtpd_junk_command_limit).
# Mail itself (MAIL, RCPT, DATA) is not counted down: a relay sends thousands over one connection.
COMMAND_CALL_LIMIT = {"NOOP": 100, "RSET": 100, "VRFY": 20, "EXPN": 20, "HELP": 20, "ETRN": 20, "*": 10**9}
DOT_LINE = b".\r\n"
# What one read of a socket may take. asyncio's default, 256 KiB, is over malloc's threshold for
# memory of its own: every read of a few KB would map 256 KiB and unmap it. Below it, reads reuse the heap.
READ_BYTES = 64 * 1024
END_OF_DATA = b"\r\n" + DOT_LINE
# A dot that starts a line (after CRLF or a bare LF), unless the line is that dot alone: a client that
# dot-stuffs sends ``..`` for it, so a lone dot ended by a bare LF is content (SMTP smuggling).
_STUFFED_DOT = re.compile(rb"\n\.(?!\n)")
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# <dot-atom@domain> and the blanks after it, not followed by a comment: what nearly every client sends
_PLAIN_PATH = re.compile(rf"<((?:{_ATOM}\.)*{_ATOM}@(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+)>[ \t]*+(?!\()")


class GroupWriter:
    """Writes the messages of sessions that reach the end of DATA in the same turn of the event
    loop together, then answers them: one flush to disk for the batch (see ``durable``).

    The write runs on the loop itself, not in a thread: the GIL hand-overs would cost more CPU than
    the write (bench/README.md, "Speed tricks"). While the loop waits for the disk, the other
    sessions' data gathers in their sockets, and the next batch is that much larger.
    """

    def __init__(self, data_dir: Path, on_stored: Callable[[list[Path]], None]) -> None:
        self.data_dir = data_dir
        self.on_stored = on_stored
        spool.incoming_folder(data_dir).mkdir(parents=True, exist_ok=True)
        self.spares = spool.Spares(spool.incoming_folder(data_dir))
        self._waiting: list[tuple[bytes, spool.Envelope, asyncio.Future[Path]]] = []

    async def write(self, raw: bytes, envelope: spool.Envelope) -> Path:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Path] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._write_batch)  # after the other sessions ready in this turn
        self._waiting.append((raw, envelope, future))
        return await future

    def close(self) -> None:
        self.spares.close()

    def _write_batch(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            paths = spool.write_incoming(self.data_dir, [(raw, envelope) for raw, envelope, _future in batch],
                                         self.spares)
        except Exception as error:  # each session of the batch answers 451
            for _raw, _envelope, future in batch:
                future.set_exception(error)
            return
        try:
            self.on_stored(paths)
        except Exception:  # they are durable: admitted at the next start if not now
            log.exception("could not name %s stored messages for admission", len(paths))
        for (_raw, _envelope, future), path in zip(batch, paths, strict=True):
            future.set_result(path)


class Sessions:
    """The SMTP sessions this listener holds, in all and by client address: past a cap, a new one is
    answered 421 and closed at once, before it can hold a file descriptor for long (1,500 idle
    connections once starved real mail under a limit of 1,024)."""

    def __init__(self, most: int, most_per_address: int) -> None:
        self.most, self.most_per_address = most, most_per_address
        self.by_address: Counter[str] = Counter()

    def open(self, address: str) -> str | None:
        """Count a new session in; the 421 to answer when it is one too many (it is not counted then)."""
        if sum(self.by_address.values()) >= self.most:
            return TOO_MANY_SESSIONS
        if self.by_address[address] >= self.most_per_address:
            return TOO_MANY_FROM_YOU
        self.by_address[address] += 1
        return None

    def close(self, address: str) -> None:
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class IngressHandler:
    """aiosmtpd handler: ``handle_RCPT`` routes or refuses, ``handle_DATA`` keeps the message."""

    def __init__(self, settings: Settings, on_stored: Callable[[list[Path]], None],
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.settings = settings
        self.writer = GroupWriter(settings.data_dir, on_stored)
        self.sessions = Sessions(settings.smtp_max_sessions, settings.smtp_max_sessions_per_address)
        self.revoked = Revoked(settings.data_dir)
        self._on_refused = on_refused

    def refused(self, reason: str) -> None:
        """A mail or a recipient refused, told to the serving process, which counts it (``/metrics``)."""
        if self._on_refused is not None:
            self._on_refused(reason)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        """The sender is ``<>`` or exactly one address: it is stored, and it is who a message without
        From is from (a NUL or 1,000 characters once stopped admission on PostgreSQL)."""
        if address not in ("", "<>") and not is_addr_spec(address):
            log.info("MAIL FROM %r refused: not one address", address[:100])
            self.refused("bad_sender")
            return BAD_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return OK

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        settings = self.settings
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            self.refused("too_many_recipients")
            return TOO_MANY_RECIPIENTS.format(limit=MAX_RECIPIENTS)
        mailbox = settings.mailbox_for(address)
        if mailbox is None:
            log.info("RCPT %s refused: not a mailbox of %s", address, settings.domain)
            return _refused(server, session, UNKNOWN_RECIPIENT, "unknown_recipient")
        local, plus, token = address.split("@", 1)[0].partition("+")
        named = verify_reply_token(settings.secret_key, token.lower(), local) if plus else None
        if plus and named is None:
            log.info("RCPT %s refused: token signature does not verify", address)
            return _refused(server, session, FORGED_TOKEN, "forged_token")
        if named is not None and named.participant_id in self.revoked:
            log.info("RCPT %s refused: its participant was removed from request #%s", address, named.request_id)
            return _refused(server, session, VOID_TOKEN, "removed_participant")
        envelope.rcpt_tos.append(address)
        return OK

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        settings = self.settings
        raw = envelope.original_content or b""
        mailbox = settings.mailbox_for(envelope.rcpt_tos[0])
        assert mailbox is not None  # RCPT let only our mailboxes through
        kept = spool.Envelope("smtp", mailbox.address, envelope.mail_from or "", tuple(envelope.rcpt_tos))
        try:
            path = await self.writer.write(raw, kept)
        except Exception as error:  # the client keeps the message and tries again: nothing is lost
            log.exception("could not store a message from %s", envelope.mail_from)
            full = isinstance(error, OSError) and error.errno in _NO_ROOM
            self.refused("disk_full" if full else "storage_failed")
            return DISK_FULL if full else STORAGE_FAILED
        return f"250 OK queued as {path.stem}"


def normalise_data(data: bytes) -> bytes:
    """The message as it is kept: every line ended by CRLF, dot-stuffing undone.

    ``data`` is what came before the ``<CR><LF>.<CR><LF>`` that ended it. As Postfix does by
    default since 3.9 (``smtpd_forbid_bare_newline = normalize``), a bare LF ends a line like CRLF
    (Python's ``smtplib.sendmail`` sends bytes as they are, and ``as_bytes()`` writes LF), while
    only the standard sequence ends the data: ``<LF>.<LF>``, ``<CR>.<CR><LF>`` and the like are
    content, never the start of another message. A bare CR is content too, kept as it came.
    Dot-stuffing is undone on every line, however it ended, but a lone dot ended by a bare LF is
    kept: a client that dot-stuffs would have sent ``..``.

    Lines longer than RFC 5321's 1,000 bytes are taken whole, as Postfix takes them: the limit
    protects a receiver's buffers, which this reader does not have (it is bounded by the size limit
    alone), and cutting a line would change the message that was sent.
    """
    lines = b"\n" + data.replace(b"\r\n", b"\n")
    return _STUFFED_DOT.sub(b"\n", lines)[1:].replace(b"\n", b"\r\n")


def _refused(server: SMTP, session: Session, answer: str, reason: str) -> str:
    """A refused recipient, counted: past ``MAX_REFUSED`` in a session (a harvest of addresses, a flood
    of log lines), 421 and the session is closed, as Postfix's ``smtpd_hard_error_limit`` does."""
    refused = getattr(session, "refused_recipients", 0) + 1
    session.refused_recipients = refused  # type: ignore[attr-defined]
    handler: IngressHandler = server.event_handler
    if refused <= MAX_REFUSED:
        handler.refused(reason)
        return answer
    handler.refused("too_many_refused")
    if server.transport is not None:  # closed once the 421 is written: a closing transport sends what it has
        asyncio.get_running_loop().call_soon(server.transport.close)
    return TOO_MANY_REFUSED


class IngressSMTP(SMTP):
    """aiosmtpd's protocol, with the DATA phase read in blocks instead of line by line.

    aiosmtpd awaits each line of DATA, about a hundred per mail. Read up to each line that ends in
    a dot instead, a mail is a few reads (``bench/README.md``). The answers stay aiosmtpd's: 503 and
    501 before DATA, 552 past the size limit; what is kept is ``normalise_data``'s. Bytes only
    (``decode_data=False``).
    """

    _refused: str | None = None
    _counted: str | None = None  # the client address this session is counted under

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if hasattr(transport, "max_size"):  # asyncio's socket transport: each read allocates this much
            transport.max_size = READ_BYTES
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        self._refused = self.event_handler.sessions.open(address)
        if self._refused is None:
            self._counted = address

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted is not None:
            self.event_handler.sessions.close(self._counted)
            self._counted = None
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        """aiosmtpd's, but a session over the caps is told so instead of greeted."""
        if self._refused is not None:
            self.event_handler.refused("too_many_sessions")
            await self.push(self._refused)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's, with a short way for a plain ``<local@domain>``, the usual MAIL FROM and RCPT TO:
        its parser of RFC 5322 addresses is the listener's costliest step for them."""
        plain = _PLAIN_PATH.match(arg)
        if plain is None or (self.local_part_limit and len(plain.group(1).rpartition("@")[0]) > self.local_part_limit):
            return super()._getaddr(arg)
        return plain.group(1), arg[plain.end():]

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        deadline = self.event_handler.settings.smtp_data_seconds
        self._reset_timeout(deadline + 1)  # aiosmtpd's idle timer, reset per command, must not cut DATA
        try:
            data = await asyncio.wait_for(self._read_data(), deadline)
        except TimeoutError:  # a client that trickles its data holds a session for ever
            self.event_handler.refused("too_slow")
            await self.push(DATA_TOO_SLOW.format(seconds=deadline))
            self._writer.close()
            return
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        if data is None:
            self.event_handler.refused("too_big")
            status = TOO_BIG.format(limit=self.data_size_limit)
        else:
            self.envelope.content = self.envelope.original_content = normalise_data(data)
            status = await self._call_handler_hook("DATA")
        self.envelope = self._create_envelope()  # ready for the next mail, as aiosmtpd leaves it
        self._reset_timeout()
        await self.push(status)

    async def _read_data(self) -> bytes | None:
        """The lines before the lone dot, still dot-stuffed; None past ``data_size_limit``.

        The lone dot is found by its line, ``\\r\\n.\\r\\n``, over what came before it: the line
        break before a lone dot right after the 354 is the 354's own.
        """
        limit = self.data_size_limit
        chunks: list[bytes] = []
        size, last = 0, b"\r\n"
        while last != END_OF_DATA:
            try:
                chunk = await self._reader.readuntil(DOT_LINE)
            except asyncio.LimitOverrunError as error:  # no dot line within the reader's limit: take what it has
                chunk = await self._reader.readexactly(error.consumed)
            size += len(chunk)
            if not limit or size <= limit + len(DOT_LINE):
                chunks.append(chunk)
            else:  # too big: what is left is only read through
                chunks.clear()
            last = (last + chunk[-len(END_OF_DATA):])[-len(END_OF_DATA):]
        if limit and size - len(DOT_LINE) > limit:
            return None
        return b"".join(chunks)[:-len(DOT_LINE)]


class SharedPortController(Controller):
    """aiosmtpd's Controller on a port that several listener processes share (SO_REUSEPORT).

    aiosmtpd checks its server by connecting to its own port, which may reach another listener
    of the same port: the check calls the server's factory directly instead.
    """

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, host=self.hostname, port=self.port,
                                       ssl=self.ssl_context, reuse_port=True)

    def factory(self) -> IngressSMTP:
        return IngressSMTP(self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        self.loop.call_soon_threadsafe(self._factory_invoker)


def start_smtp(settings: Settings, on_stored: Callable[[list[Path]], None],
               on_refused: Callable[[str], None] | None = None) -> Controller:
    """A running SMTP server; ``IngressSMTP`` answers 552 past ``data_size_limit``."""
    limit = settings.max_message_size
    controller = SharedPortController(IngressHandler(settings, on_stored, on_refused), hostname=settings.smtp_host,
                                      port=settings.smtp_port, data_size_limit=limit, enable_SMTPUTF8=True,
                                      decode_data=False, timeout=settings.smtp_idle_seconds,
                                      command_call_limit=COMMAND_CALL_LIMIT)
    controller.start()
    return controller


def listen(names: Connection, settings: Settings) -> None:
    """The listener process (``children.Child``): serve SMTP until told to stop on ``names`` or until
    the serving process is gone.

    It names on the socket the files it kept (a list) and the reasons it refused mail for (a dict of
    counts), which the serving process counts: this module imports no database code and no metrics
    library, so that a listener process stays small.
    """
    configure_logging()
    use_offset_file(settings.clock_file)  # the received time written with each message
    logging.getLogger("asyncio").addFilter(OncePerMinute())  # failed accepts, under a flood
    try:
        controller = start_smtp(settings, lambda paths: names.send([path.name for path in paths]),
                                lambda reason: names.send({reason: 1}))
    except Exception as error:  # the parent reports it and exits
        names.send(f"!{type(error).__name__}: {error}")
        return
    names.send("")  # ready
    try:
        names.recv()
    except (EOFError, OSError):  # the serving process died (kill -9): do not outlive it
        os._exit(1)
    controller.stop()
    controller.handler.writer.close()
