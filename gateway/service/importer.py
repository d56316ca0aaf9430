"""``gateway import``: an mbox file or a Maildir through the same door, pipeline and batching as SMTP.

Messages are taken ``PROCESS_TOGETHER`` at a time, as ``serve`` takes what its listeners received:
written to the spool with one flush, admitted in one transaction (numbered in the order of the
archive), applied together (``process_batch``), and their mails sent. A batch is stored before it is
applied, so an interrupted import loses nothing: what was stored and not applied is applied at the next
``serve``. With ``--no-mail`` each message is stored quiet (``inbound.quiet``): whoever applies it, this
command or a processor after an interruption, keeps its mails marked suppressed, never sent.
"""

from __future__ import annotations

import itertools
import json
import mailbox
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from gateway.context import open_context
from gateway.intake.admission import PROCESS_TOGETHER, store_all
from gateway.intake.spool import Envelope
from gateway.outbound.outbox import deliver_all
from gateway.pipeline.process import process_batch
from gateway.settings import ConfigError, Settings
from gateway.transaction import writer


def _archive(path: Path) -> mailbox.Mailbox:
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise ConfigError(f"{path} is a folder but not a Maildir (no cur/ or new/)")
        return mailbox.Maildir(path, create=False)
    if path.is_file():
        return mailbox.mbox(path, create=False)
    raise ConfigError(f"{path} does not exist: give an mbox file or a Maildir folder")


def _messages(archive: mailbox.Mailbox) -> Iterator[bytes]:
    """Each message's bytes as the archive holds them (not parsed and written again)."""
    for key in sorted(archive.keys()) if isinstance(archive, mailbox.Maildir) else archive.keys():
        yield archive.get_bytes(key)


def _batches(raws: Iterator[bytes], size: int) -> Iterator[tuple[bytes, ...]]:
    while batch := tuple(itertools.islice(raws, size)):
        yield batch


def import_path(settings: Settings, path: Path, mailbox_address: str | None, *, as_json: bool = False,
                send_mail: bool = True) -> int:
    target = settings.mailbox_for(mailbox_address) if mailbox_address else settings.first_helpdesk()
    if target is None:
        raise ConfigError(f"{mailbox_address or 'no helpdesk mailbox'} is not a configured mailbox")
    archive = _archive(path)
    context = open_context(settings)
    counts: Counter[str] = Counter()
    bar = tqdm(total=len(archive), unit="mail", file=sys.stderr, disable=None)
    for raws in _batches(_messages(archive), PROCESS_TOGETHER):
        # one received time for the batch: admission keeps the archive's order
        envelope = Envelope("import", target.address, "", (target.address,), quiet=not send_mail)
        stored = store_all(context, [(raw, envelope) for raw in raws])
        with writer(context, background=True):  # a serve beside it on SQLite keeps its turns
            outcomes = process_batch(context, stored)
        deliver_all(context, [outbox_id for outcome in outcomes for outbox_id in outcome.outbox_ids])
        counts.update(outcome.status for outcome in outcomes)
        bar.update(len(raws))
        bar.set_postfix(counts)
    bar.close()
    if as_json:
        print(json.dumps(dict(counts)))
    else:
        print(f"imported {sum(counts.values())} messages: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0
