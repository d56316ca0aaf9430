"""The archives ``gateway import`` reads (``intake.archives``): what it refuses, and the order it reads."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

import pytest
from conftest import mail

from gateway.intake.archives import open_archive
from gateway.service import importer
from gateway.settings import ConfigError

LARGEST = 26_214_400  # max_message_size's default


def _message(number: int) -> bytes:
    return mail(f"c{number}@client.example", "support@shop.example", f"Message {number}", "Bonjour").as_bytes()


def test_a_maildir_is_read_in_the_order_delivered_whatever_the_width_of_its_microseconds(tmp_path: Path) -> None:
    """Python's mailbox and Dovecot name a file SECONDS.MMICROSECONDS..., the microseconds not padded."""
    for folder in ("new", "cur", "tmp"):
        (tmp_path / folder).mkdir()
    delivered = ["1796600000.M944921P7Q1.host", "1796600001.M98311P7Q2.host", "1796600001.M944921P7Q3.host",
                 "1796600010.M5P7Q4.host"]
    for number, name in enumerate(delivered):
        (tmp_path / ("cur" if number % 2 else "new") / (name + (":2,S" if number % 2 else ""))).write_bytes(
            _message(number))
    (tmp_path / "new" / ".dovecot-uidlist").write_bytes(b"3 V1 N5\n")  # a client's own file, not a message
    archive = open_archive(tmp_path)
    assert [m.split(b"Subject: ")[1].split(b"\n")[0].strip() for m in archive.messages(LARGEST)] == [
        b"Message 0", b"Message 1", b"Message 2", b"Message 3"]
    assert len(archive) == 4


def test_a_maildir_file_that_cannot_be_read_is_left_out_and_said(tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "box")
    keys = [box.add(_message(number)) for number in range(3)]
    (tmp_path / "box" / "new" / keys[1]).unlink()
    (tmp_path / "box" / "new" / keys[1]).symlink_to(tmp_path / "gone")  # a dangling link
    archive = open_archive(tmp_path / "box")
    assert len(list(archive.messages(LARGEST))) == 2
    assert archive.unreadable == [f"{keys[1]}: a symbolic link, not followed"]


def test_a_maildir_entry_that_is_a_link_or_a_pipe_is_never_read(tmp_path: Path) -> None:
    """A link to the site's ``gateway.toml`` would be imported as a message (kept degraded and mailed to the
    coordinators, secret key and all); a pipe would hang the import for good."""
    secret = tmp_path / "gateway.toml"
    secret.write_text('secret_key = "do-not-mail-me"\n')
    box = mailbox.Maildir(tmp_path / "box")
    first = box.add(_message(1))
    (tmp_path / "box" / "new" / "1796600001.M1P1Q1.host").symlink_to(secret)
    os.mkfifo(tmp_path / "box" / "new" / "1796600002.M1P1Q2.host")
    last = box.add(_message(2))
    archive = open_archive(tmp_path / "box")
    read = list(archive.messages(LARGEST))
    assert len(read) == 2 and not any(b"do-not-mail-me" in message for message in read)
    assert sorted(archive.unreadable) == ["1796600001.M1P1Q1.host: a symbolic link, not followed",
                                          "1796600002.M1P1Q2.host: not a regular file"]
    assert first and last


def test_what_is_not_an_archive_is_refused_with_what_it_is(tmp_path: Path) -> None:
    single = tmp_path / "message.eml"
    single.write_bytes(_message(1))
    with pytest.raises(ConfigError, match="is not an mbox: it does not begin with a \"From \" line"):
        open_archive(single)
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "cur").mkdir()
    with pytest.raises(ConfigError, match="not a Maildir \\(it needs both cur/ and new/\\)"):
        open_archive(tmp_path / "half")
    with pytest.raises(ConfigError, match="is neither an mbox file nor a Maildir folder"):
        open_archive(Path("/dev/null"))
    with pytest.raises(ConfigError, match="does not exist"):
        open_archive(tmp_path / "nothing")
    (tmp_path / "empty.mbox").write_bytes(b"")
    empty = open_archive(tmp_path / "empty.mbox")
    assert len(empty) == 0
    empty.close()


def test_a_message_larger_than_max_message_size_is_left_out_and_said(tmp_path: Path) -> None:
    """SMTP refuses it with 552; an import neither takes it nor holds it among the messages it stores."""
    box = mailbox.mbox(tmp_path / "history.mbox")
    box.add(_message(1))
    box.add(_message(2) + b"x" * 5_000)
    box.add(_message(3))
    box.close()
    archive = open_archive(tmp_path / "history.mbox")
    assert [m.split(b"Subject: ")[1].split(b"\n")[0].strip() for m in archive.messages(4_000)] == [
        b"Message 1", b"Message 3"]
    [said] = archive.unreadable
    assert said.startswith("1: ") and said.endswith("bytes, larger than max_message_size (4,000)")
    archive.close()


def test_messages_are_stored_in_batches_that_large_messages_end_early(monkeypatch: pytest.MonkeyPatch) -> None:
    """200 messages a batch, or fewer once they hold ``STORE_BYTES``: 200 large ones are not held at once."""
    monkeypatch.setattr(importer, "STORE_BYTES", 1_000)
    raws = [b"a" * 600, b"b" * 600, b"c" * 10, *([b"d"] * 250)]
    assert [len(batch) for batch in importer._batches(iter(raws))] == [2, 200, 51]
