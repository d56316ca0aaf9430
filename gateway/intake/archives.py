"""The archives ``gateway import`` reads: an mbox file or a Maildir folder, and whether one is large
enough to be applied by a processor of its own.

Kept apart from the importer, and light to import: the command opens and counts the archive, and
starts that processor, before it imports the pipeline (``cli.main.cmd_import``).
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path

from gateway.settings import ConfigError

# From this many messages on, the processor's start (about a second of CPU, on the other core) pays
# for itself (bench/README.md, "import_mbox").
OWN_PROCESS_FROM = 200


def open_archive(path: Path) -> mailbox.Mailbox:
    """The mbox file or Maildir folder at ``path``; a ``ConfigError`` that says what is there instead."""
    if path.is_dir():
        if not (path / "cur").is_dir() or not (path / "new").is_dir():
            raise ConfigError(f"{path} is a folder but not a Maildir (it needs both cur/ and new/)")
        return mailbox.Maildir(path, create=False)
    if path.is_file():
        return mailbox.mbox(path, create=False)
    raise ConfigError(f"{path} does not exist: give an mbox file or a Maildir folder")


def messages(archive: mailbox.Mailbox) -> Iterator[bytes]:
    """Each message's bytes as the archive holds them (not parsed and written again), a Maildir's in the
    order of their names (their delivery time), an mbox's in the file's order."""
    for key in sorted(archive.keys()) if isinstance(archive, mailbox.Maildir) else archive.keys():
        yield archive.get_bytes(key)
