"""Where outgoing mail goes when no relay is set: a Maildir that mail tools read, the exact bytes."""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path

from gateway.outbound.transports import MaildirTransport, TransientError

RAW = (b"From: Boutique <support@shop.example>\r\nTo: jean@client.example\r\n"
       b"Subject: =?utf-8?q?R=C3=A9ponse?=\r\n\r\nBonjour\r\n")


def test_each_mail_is_one_file_in_new_with_the_exact_bytes_and_nothing_left_in_tmp(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path / "outbox")
    writers = [threading.Thread(target=lambda: [transport.deliver([("s", "r", RAW + b"x" * n), ("s", "r", RAW)])
                                                for n in range(25)])
               for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    files = list((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 200 and not list((tmp_path / "outbox" / "tmp").iterdir())
    assert sorted(f.read_bytes() for f in files) == sorted(
        [RAW + b"x" * n for n in range(25) for _ in range(4)] + [RAW] * 100)
    assert len(mailbox.Maildir(tmp_path / "outbox", create=False)) == 200, "a Maildir that mail tools read"


def test_a_maildir_that_cannot_be_written_asks_to_try_again_later(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path / "outbox")
    (tmp_path / "outbox" / "tmp").rmdir()
    outcomes = transport.deliver([("s", "r", RAW), ("s", "r", RAW)])
    assert [type(outcome) for outcome in outcomes] == [TransientError, TransientError]
