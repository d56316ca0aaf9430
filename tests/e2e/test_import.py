"""``gateway import`` of an archive large enough for the processor: the same claims and batches as
``serve``, every conversation in the order of the archive, each message once."""

from __future__ import annotations

import json
import mailbox
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import mail, write_home

from gateway.service.importer import OWN_PROCESS_FROM

CUSTOMERS = OWN_PROCESS_FROM // 3 + 5  # three mails each: past the size that starts a processor


def test_a_large_archive_is_applied_by_the_processor_each_conversation_in_the_archives_order(tmp_path: Path) -> None:
    config = write_home(tmp_path)
    archive = mailbox.mbox(tmp_path / "history.mbox")
    half = CUSTOMERS // 2
    # half the customers write their three mails in a row (one batch holds them all), then the others'
    # first mails, their first replies, their second ones (a batch holds one of each conversation)
    order = [(c, step) for c in range(half) for step in range(3)]
    order += [(c, step) for step in range(3) for c in range(half, CUSTOMERS)]
    for customer, step in order:
        headers = {"message_id": f"<c{customer}-{step}@client.example>"}
        if step:
            headers["In_Reply_To"] = f"<c{customer}-{step - 1}@client.example>"
            headers["References"] = " ".join(f"<c{customer}-{s}@client.example>" for s in range(step))
        archive.add(mail(f"c{customer}@client.example", "support@shop.example",
                         ("Re: " if step else "") + f"Commande {customer}", f"message {step}", **headers))
    archive.add(archive[0])  # the same message twice in a history: applied once
    archive.flush()
    archive.close()
    done = subprocess.run([sys.executable, "-m", "gateway", "import", str(tmp_path / "history.mbox"), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "GATEWAY_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == {"processed": 3 * CUSTOMERS, "duplicate": 1}
    with sqlite3.connect(tmp_path / "var" / "gateway.db") as db:
        texts: dict[str, list[str]] = {}
        for subject, text in db.execute("SELECT r.subject, c.text FROM comments c JOIN requests r "
                                        "ON r.id = c.request_id ORDER BY c.id"):
            texts.setdefault(subject, []).append(text)
        pending = db.execute("SELECT count(*) FROM inbound WHERE status = 'pending'").fetchone()[0]
    assert len(texts) == CUSTOMERS, "each follow-up threaded to its customer's request"
    assert all(said == ["message 0", "message 1", "message 2"] for said in texts.values()), "in the archive's order"
    assert pending == 0
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == CUSTOMERS, "one acknowledgment each"
