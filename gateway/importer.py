"""``gateway import``: an mbox file or a Maildir through the same door and pipeline as SMTP.

Messages are stored first (so nothing is lost if the import is interrupted), then
processed in this process, in order, with a progress bar.
"""

from __future__ import annotations

import json
import mailbox
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import update
from tqdm import tqdm

from gateway.context import Context, open_context
from gateway.inbound.accept import store
from gateway.inbound.process import process_safely
from gateway.models import Outbox
from gateway.outbound.outbox import deliver_all
from gateway.settings import ConfigError, Settings


def _messages(path: Path) -> Iterator[bytes]:
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise ConfigError(f"{path} is a folder but not a Maildir (no cur/ or new/)")
        folder = mailbox.Maildir(path, create=False)
        for key in sorted(folder.keys()):
            yield folder.get_bytes(key)
    elif path.is_file():
        for message in mailbox.mbox(path, create=False):
            yield message.as_bytes(unixfrom=False)
    else:
        raise ConfigError(f"{path} does not exist: give an mbox file or a Maildir folder")


def _count(path: Path) -> int | None:
    if path.is_dir():
        return len(mailbox.Maildir(path, create=False))
    return None


def _suppress(context: Context, outbox_ids: list[int]) -> None:
    """Importing history must not mail anyone about it: the rows stay, marked as never sent."""
    with context.sessions.begin() as session:
        session.execute(update(Outbox).where(Outbox.id.in_(outbox_ids)).values(status="suppressed"))


def import_path(settings: Settings, path: Path, mailbox_address: str | None, *, as_json: bool = False,
                send_mail: bool = True) -> int:
    target = settings.mailbox_for(mailbox_address) if mailbox_address else settings.first_helpdesk()
    if target is None:
        raise ConfigError(f"{mailbox_address or 'no helpdesk mailbox'} is not a configured mailbox")
    context = open_context(settings)
    counts: Counter[str] = Counter()
    bar = tqdm(_messages(path), total=_count(path), unit="mail", file=sys.stderr, disable=None)
    for raw in bar:
        inbound_id = store(context, raw, source="import", mailbox=target.address, envelope_to=(target.address,))
        outcome = process_safely(context, inbound_id)
        if not send_mail:
            _suppress(context, outcome.outbox_ids)
        else:
            deliver_all(context, outcome.outbox_ids)
        counts[outcome.status] += 1
        bar.set_postfix(counts)
    bar.close()
    if as_json:
        print(json.dumps(dict(counts)))
    else:
        print(f"imported {sum(counts.values())} messages: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0
