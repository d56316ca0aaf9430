"""The SMTP edge's own protocol: the DATA phase read in blocks (what a client sends is what is kept,
byte for byte), and addresses read the short way."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP
from conftest import free_port

from gateway.intake import spool
from gateway.intake.smtp import IngressSMTP, start_smtp
from gateway.settings import Mailbox, Settings


class Client:
    """A bare SMTP client on a socket, to send DATA in whatever pieces a test wants."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.pending = b""
        assert self.reply().startswith("220")
        self.command("EHLO client.example")

    def reply(self) -> str:
        """The next complete reply (its last line)."""
        while True:
            line = self.reply_line()
            if line[3:4] != "-":
                return line

    def reply_line(self) -> str:
        while b"\r\n" not in self.pending:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.pending += data
        line, self.pending = self.pending.split(b"\r\n", 1)
        return line.decode()

    def command(self, line: str) -> str:
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def start_data(self) -> None:
        assert self.command("MAIL FROM:<a@client.example>").startswith("250")
        assert self.command("RCPT TO:<support@shop.example>").startswith("250")
        assert self.command("DATA").startswith("354")

    def send_in_pieces(self, wire: bytes, cuts: list[int]) -> None:
        for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
            self.sock.sendall(wire[start:end])
            time.sleep(0.01)  # each piece reaches the server on its own

    def close(self) -> None:
        self.sock.close()


@contextmanager
def listening(tmp_path: Path, **limits: Any) -> Iterator[tuple[int, list[Path]]]:
    """A listener on a free port with these settings, and the files of the messages it stored."""
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", smtp_port=free_port(),
                        mailboxes=(Mailbox("support@shop.example"),), **limits)
    stored: list[Path] = []
    controller = start_smtp(settings, stored.extend)
    try:
        yield settings.smtp_port, stored
    finally:
        controller.stop()
        controller.handler.writer.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, list[Path]]]:
    with listening(tmp_path, max_message_size=20_000) as running:
        yield running


def kept(stored: list[Path]) -> list[bytes]:
    return [spool.read_message(path)[1] for path in stored]


HEAD = b"From: a@client.example\r\nTo: support@shop.example\r\nSubject: dots\r\n\r\n"


@pytest.mark.parametrize("body, expected", [
    (b"", b""),
    (b"One line and no header\r\n", b"One line and no header\r\n"),
    (HEAD + b"Sentence one.\r\nTwo.\r\n", HEAD + b"Sentence one.\r\nTwo.\r\n"),
    (HEAD + b"..stuffed\r\n.leading dot\r\n...\r\n", HEAD + b".stuffed\r\nleading dot\r\n..\r\n"),
    (b".first line stuffed\r\n", b"first line stuffed\r\n"),
    (HEAD + (b"x" * 900 + b"\r\n") * 5 + b"end.\r\n", HEAD + (b"x" * 900 + b"\r\n") * 5 + b"end.\r\n"),
    (HEAD.replace(b"\r\n", b"\n") + b"Bare.\nLF.\n\r\n", HEAD + b"Bare.\r\nLF.\r\n\r\n"),
    (HEAD + b"Mixed\nline\r\nends\n\r\n", HEAD + b"Mixed\r\nline\r\nends\r\n\r\n"),
    (HEAD + b"..stuffed\n.leading\n...\r\n", HEAD + b".stuffed\r\nleading\r\n..\r\n"),
    (HEAD + b"a bare\rCR\r\r\n", HEAD + b"a bare\rCR\r\r\n"),
    (HEAD + b"z" * 5000 + b"\r\n", HEAD + b"z" * 5000 + b"\r\n"),
    (HEAD + b"z" * 5000 + b"\n" + b"w" * 14_000 + b"\r\n", HEAD + b"z" * 5000 + b"\r\n" + b"w" * 14_000 + b"\r\n"),
], ids=["empty", "one line", "lines ending in a dot", "dot-stuffing", "first line stuffed", "long lines",
        "bare LF", "mixed line ends", "dot-stuffing after LF", "bare CR is content", "a line over 1,000 bytes",
        "a line longer than the reader's limit"])
def test_what_is_kept_is_the_data_without_its_dot_stuffing(server: tuple[int, list[Path]], body: bytes,
                                                           expected: bytes) -> None:
    port, stored = server
    client = Client(port)
    client.start_data()
    client.sock.sendall(body + b".\r\n")
    assert client.reply().startswith("250")
    client.close()
    assert kept(stored) == [expected]


def test_the_end_of_data_is_found_whichever_pieces_it_arrives_in(server: tuple[int, list[Path]]) -> None:
    port, stored = server
    body = HEAD + b"Fin.\r\n.\r\n"
    end = len(body)
    for cut in range(end - 7, end):
        client = Client(port)
        client.start_data()
        client.send_in_pieces(body, [cut])
        assert client.reply().startswith("250"), f"cut at {cut - end}"
        client.close()
    assert kept(stored) == [HEAD + b"Fin.\r\n"] * 7


def test_commands_sent_right_after_the_data_are_answered_in_turn(server: tuple[int, list[Path]]) -> None:
    port, stored = server
    client = Client(port)
    client.start_data()
    client.sock.sendall(HEAD + b"Hello.\r\n.\r\nNOOP\r\nQUIT\r\n")  # a pipelining client does not wait
    assert client.reply().startswith("250 OK queued")
    assert client.reply().startswith("250")  # the NOOP, not swallowed with the data
    assert client.reply().startswith("221")
    client.close()
    assert kept(stored) == [HEAD + b"Hello.\r\n"]


def test_too_big_is_refused_and_the_session_goes_on(server: tuple[int, list[Path]]) -> None:
    port, stored = server
    client = Client(port)
    client.start_data()
    client.sock.sendall(HEAD + (b"y" * 70 + b".\r\n") * 400 + b".\r\n")  # 29 KB over a limit of 20,000
    assert client.reply() == "552 5.3.4 message exceeds the size limit of 20000 bytes"
    client.start_data()
    client.sock.sendall(HEAD + (b"y" * 70 + b".\n") * 400 + b"\r\n.\r\n")  # the same with bare LF line ends
    assert client.reply() == "552 5.3.4 message exceeds the size limit of 20000 bytes"
    client.start_data()
    client.sock.sendall(HEAD + b"Small.\r\n.\r\n")
    assert client.reply().startswith("250")
    client.close()
    assert kept(stored) == [HEAD + b"Small.\r\n"]


# each variant, and how it is kept: line ends as CRLF, a lone dot line as content, a stuffed dot removed
SMUGGLING = {b"\n.\n": b"\r\n.\r\n", b"\r.\r\n": b"\r.\r\n", b"\n.\r\n": b"\r\n.\r\n", b"\r\n.\n": b"\r\n.\r\n",
             b"\r.\r": b"\r.\r", b"\r\n.\r": b"\r\n\r"}


@pytest.mark.parametrize("variant, as_kept", SMUGGLING.items(), ids=[repr(v) for v in SMUGGLING])
def test_no_end_of_data_but_the_standard_one_ends_a_message(server: tuple[int, list[Path]], variant: bytes,
                                                            as_kept: bytes) -> None:
    """The SMTP smuggling variants of SEC Consult's 2023 report: the bytes after a non-standard end
    of data stay in the first message, they never become a second one."""
    port, stored = server
    smuggled = (b"MAIL FROM:<admin@shop.example>\r\nRCPT TO:<support@shop.example>\r\nDATA\r\n"
                b"From: admin@shop.example\r\nSubject: smuggled\r\n\r\n#status resolved\r\n")
    client = Client(port)
    client.start_data()
    client.sock.sendall(HEAD + b"Before." + variant + smuggled + b".\r\nQUIT\r\n")
    assert client.reply().startswith("250 OK queued")
    assert client.reply().startswith("221")  # the QUIT: nothing in between was taken as a command
    client.close()
    assert kept(stored) == [HEAD + b"Before." + as_kept + smuggled]


def test_the_server_advertises_8bitmime_and_smtputf8_and_takes_a_utf8_address(
        server: tuple[int, list[Path]]) -> None:
    port, stored = server
    client = Client(port)
    client.sock.sendall(b"EHLO client.example\r\n")
    lines = [client.reply_line()]
    while lines[-1][3:4] == "-":
        lines.append(client.reply_line())
    assert "250-8BITMIME" in lines and "250-SMTPUTF8" in lines
    assert client.command("MAIL FROM:<j\u00e9r\u00f4me@client.example> SMTPUTF8 BODY=8BITMIME").startswith("250")
    assert client.command("RCPT TO:<support@shop.example>").startswith("250")
    assert client.command("DATA").startswith("354")
    client.sock.sendall("From: J\u00e9r\u00f4me <j\u00e9r\u00f4me@client.example>\r\n\r\n\u00e9t\u00e9\r\n.\r\n"
                        .encode())
    assert client.reply().startswith("250")
    client.close()
    [path] = stored
    envelope, message = spool.read_message(path)
    assert envelope.mail_from == "j\u00e9r\u00f4me@client.example"
    assert message == "From: J\u00e9r\u00f4me <j\u00e9r\u00f4me@client.example>\r\n\r\n\u00e9t\u00e9\r\n".encode()


def test_data_before_any_recipient_is_refused(server: tuple[int, list[Path]]) -> None:
    port, _stored = server
    client = Client(port)
    assert client.command("MAIL FROM:<a@client.example>").startswith("250")
    assert client.command("DATA").startswith("503")
    client.close()


@pytest.mark.parametrize("limit", [0, 64])
def test_addresses_are_read_as_aiosmtpd_reads_them(limit: int) -> None:
    loop = asyncio.new_event_loop()
    try:
        protocol = IngressSMTP(object(), loop=loop)
        protocol.local_part_limit = limit
        for arg in ["<a@b.example>", "<a@b.example> SIZE=1234 BODY=8BITMIME", "<a@b.example>\t SIZE=1",
                    "<a@b.example> (comment) SIZE=1", "<a@b.example>(comment)", "<First.Last+tag@Mail.Example>",
                    "<\"quoted local\"@b.example>", "<a@[192.0.2.1]>", "<>", "a@b.example", " <a@b.example>",
                    "<a@b.example>x", "<a@b.example", "<@relay.example:a@b.example>", "<a.@b.example>",
                    "<.a@b.example>", "<a..b@c.example>", "<a@b.example.>", "<jérôme@b.example>",
                    f"<{'x' * 65}@b.example>", f"<{'x' * 64}@b.example>", "<a@b c>", ""]:
            assert protocol._getaddr(arg) == SMTP._getaddr(protocol, arg), arg
    finally:
        loop.close()


def test_a_read_takes_at_most_what_malloc_serves_from_its_heap(tmp_path: Path) -> None:
    """asyncio's 256 KiB reads each mapped memory of their own and unmapped it: bench/ingest.py took
    25 % more mail with 64 KiB."""
    from gateway.intake.smtp import READ_BYTES, IngressHandler

    settings = Settings(home=tmp_path, data_dir=tmp_path, mailboxes=(Mailbox("support@shop.example"),))

    async def accepted() -> int:
        ours, theirs = socket.socketpair()
        handler = IngressHandler(settings, lambda paths: None)
        transport, _protocol = await asyncio.get_running_loop().connect_accepted_socket(
            lambda: IngressSMTP(handler), ours)
        size = int(transport.max_size)  # type: ignore[attr-defined]
        transport.close()
        theirs.close()
        handler.writer.close()
        return size

    assert asyncio.run(accepted()) == READ_BYTES <= 128 * 1024


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[tuple[int, list[Path]]]:
    """A listener with small caps, to reach them with a few sockets."""
    with listening(tmp_path, smtp_max_sessions=5, smtp_max_sessions_per_address=3, smtp_idle_seconds=2,
                   smtp_data_seconds=1) as running:
        yield running


def greeting(port: int) -> tuple[socket.socket, str]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock, sock.recv(1024).decode()


def test_past_the_sessions_from_one_address_a_new_one_gets_421_and_a_freed_one_is_taken_again(
        capped: tuple[int, list[Path]]) -> None:
    port, _stored = capped
    held = [greeting(port) for _ in range(3)]
    assert all(answer.startswith("220") for _sock, answer in held)
    extra, answer = greeting(port)
    assert answer.startswith("421 4.7.0 too many connections from your address")
    assert extra.recv(1024) == b"", "and closed"
    extra.close()
    held.pop()[0].close()
    time.sleep(0.2)
    again, answer = greeting(port)
    assert answer.startswith("220")
    for sock in [again, *(sock for sock, _answer in held)]:
        sock.close()


def test_past_the_sessions_in_all_a_new_one_gets_421(capped: tuple[int, list[Path]]) -> None:
    port, _stored = capped
    held = [greeting(port)[0] for _ in range(3)]
    for other in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):  # other client addresses, on loopback
        sock = socket.socket()
        sock.bind((other, 0))
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        answer = sock.recv(1024).decode()
        held.append(sock)
    assert answer.startswith("421 4.7.0 too many connections, try again later")
    for sock in held:
        sock.close()


def test_more_than_100_recipients_get_452_and_the_first_100_are_kept(server: tuple[int, list[Path]]) -> None:
    port, _stored = server
    client = Client(port)
    assert client.command("MAIL FROM:<a@client.example>").startswith("250")
    answers = [client.command("RCPT TO:<support@shop.example>") for _ in range(101)]
    assert all(a.startswith("250") for a in answers[:100])
    assert answers[100] == "452 4.5.3 too many recipients: at most 100 a message"
    client.close()


def test_a_session_that_only_sends_noop_is_closed_after_100(server: tuple[int, list[Path]]) -> None:
    port, _stored = server
    client = Client(port)
    answers = [client.command("NOOP") for _ in range(101)]
    assert all(a.startswith("250") for a in answers[:100]) and answers[100].startswith("421 4.7.0 NOOP")
    client.close()


def test_a_trickled_message_is_cut_at_the_data_deadline_and_an_idle_session_closed(
        capped: tuple[int, list[Path]]) -> None:
    port, stored = capped
    client = Client(port)
    client.start_data()
    started = time.monotonic()
    client.sock.sendall(HEAD + b"one line, then nothing")
    assert client.reply().startswith("421 4.4.2 the message took longer than 1 s")
    assert time.monotonic() - started < 5 and stored == []
    client.close()
    idle, answer = greeting(port)
    started = time.monotonic()
    assert answer.startswith("220") and idle.recv(1024) == b"", "closed once silent past the idle timeout"
    assert 1.5 < time.monotonic() - started < 5
    idle.close()


def test_a_full_disk_answers_452_and_the_next_message_is_taken_once_there_is_room(
        server: tuple[int, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    port, stored = server

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(spool, "write_incoming", full)
        client = Client(port)
        client.start_data()
        client.sock.sendall(HEAD + b"First.\r\n.\r\n")
        assert client.reply() == "452 4.3.1 insufficient system storage, try again later"
    client.start_data()
    client.sock.sendall(HEAD + b"Again.\r\n.\r\n")
    assert client.reply().startswith("250")
    client.close()
    assert kept(stored) == [HEAD + b"Again.\r\n"]


@pytest.mark.parametrize("sender, expected", [
    ("<a@client.example>", "250"), ("<>", "250"), ("<a\x00b@client.example>", "553 5.1.7"),
    (f"<{'x' * 400}@client.example>", "553 5.1.7"), ("<a@client.example,b@client.example>", "501")])
def test_the_sender_is_nobody_or_exactly_one_address(server: tuple[int, list[Path]], sender: str,
                                                     expected: str) -> None:
    """A NUL or 1,000 characters in MAIL FROM once stopped admission on PostgreSQL, restart included."""
    port, _stored = server
    client = Client(port)
    assert client.command(f"MAIL FROM:{sender}").startswith(expected)
    client.close()


def test_a_slow_message_is_not_cut_by_the_idle_timeout_only_by_the_data_deadline(tmp_path: Path) -> None:
    with listening(tmp_path, smtp_idle_seconds=1, smtp_data_seconds=10) as (port, stored):
        client = Client(port)
        client.start_data()
        client.sock.sendall(HEAD)
        for n in range(5):  # 2.5 s in all, each line within the idle timeout of the one before
            time.sleep(0.5)
            client.sock.sendall(b"line %d\r\n" % n)
        client.sock.sendall(b".\r\n")
        assert client.reply().startswith("250")
        client.close()
        assert kept(stored) == [HEAD + b"".join(b"line %d\r\n" % n for n in range(5))]


def test_past_20_refused_recipients_the_session_is_closed(server: tuple[int, list[Path]]) -> None:
    port, _stored = server
    client = Client(port)
    assert client.command("MAIL FROM:<a@client.example>").startswith("250")
    answers = [client.command(f"RCPT TO:<guess{n}@shop.example>") for n in range(21)]
    assert all(a.startswith("550") for a in answers[:20])
    assert answers[20] == "421 4.7.0 too many refused recipients, closing"
    assert client.sock.recv(1024) == b"", "and closed"
    client.close()
