"""The archives ``gateway import`` reads: an mbox file or a Maildir folder, their messages in the order
they were delivered, and whether one is large enough to be applied by a processor of its own.

Kept apart from the importer, and light to import: the command opens and counts the archive, and
starts that processor, before it imports the pipeline (``cli.main.cmd_import``).
"""

from __future__ import annotations

import errno
import mailbox
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.settings import ConfigError

# From this many messages on, the processor's start (about a second of CPU, on the other core) pays
# for itself (bench/README.md, "import_mbox").
OWN_PROCESS_FROM = 200

# A Maildir file's name begins with its delivery time, SECONDS.MMICROSECONDS (Dovecot, Python's
# mailbox), the microseconds not padded: compared as text, M98311 came after M944921.
_DELIVERED = re.compile(r"(\d+)(?:\.M(\d+))?")


@dataclass
class Archive:
    """An archive's messages in the order they are imported, and those that could not be read."""

    keys: list[str]
    read: Callable[[str], bytes]  # a message's bytes as the archive holds them (not parsed and written again)
    close: Callable[[], None] = lambda: None  # what the archive holds open (an mbox, its file)
    unreadable: list[str] = field(default_factory=list)  # "key: why", once ``messages`` met them

    def __len__(self) -> int:
        return len(self.keys)

    def messages(self, largest: int) -> Iterator[bytes]:
        """Each message's bytes. One that cannot be read (a Maildir file gone or unreadable, a link, a pipe),
        or larger than ``largest`` bytes (``max_message_size``, which SMTP refuses with 552), is left out,
        and said in ``unreadable``."""
        for key in self.keys:
            try:
                raw = self.read(key)
            except OSError as error:
                self.unreadable.append(f"{key}: {error.strerror or error}")
                continue
            if len(raw) > largest:
                self.unreadable.append(f"{key}: {len(raw):,} bytes, larger than max_message_size ({largest:,})")
                continue
            yield raw


def open_archive(path: Path) -> Archive:
    """The mbox file or Maildir folder at ``path``; a ``ConfigError`` that says what is there instead."""
    if path.is_dir():
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise ConfigError(f"{path} is a folder but not a Maildir (it needs both cur/ and new/)")
        files = _maildir_files(path)
        return Archive(sorted(files, key=_delivered), lambda key: _read_regular(files[key]))
    if path.is_file():
        with path.open("rb") as file:
            start = file.read(5)
        if start and start != b"From ":
            raise ConfigError(f"{path} is not an mbox: it does not begin with a \"From \" line, and what came "
                              "before the first one would be lost (one message? put it in a Maildir's new/ folder)")
        box = mailbox.mbox(path, create=False)
        return Archive(list(box.keys()), box.get_bytes, box.close)
    if path.exists():
        raise ConfigError(f"{path} is neither an mbox file nor a Maildir folder")
    raise ConfigError(f"{path} does not exist: give an mbox file or a Maildir folder")


def _maildir_files(path: Path) -> dict[str, str]:
    """Each message's file in new/ and cur/, by its key (its name before the ``:`` of its flags). A name
    that begins with a dot is not a message (the Maildir convention: a client's own file)."""
    return {entry.name.split(":", 1)[0]: entry.path for folder in ("new", "cur")
            for entry in os.scandir(path / folder) if not entry.name.startswith(".")}


def _read_regular(path: str) -> bytes:
    """A file's bytes, if it is a file: a link is not followed (one to the site's ``gateway.toml`` would mail
    its secret key to the coordinators as a message kept degraded), and a pipe is not waited on."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symbolic link, not followed") from None
        raise
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return file.read()


def _delivered(key: str) -> tuple[int, int, str]:
    match = _DELIVERED.match(key)
    return (int(match[1]), int(match[2] or 0), key) if match else (0, 0, key)
