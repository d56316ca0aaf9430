#!/usr/bin/env python3
"""Import benchmark: ``gateway import`` of an mbox of a shop's history, on SQLite.

Run by hand, not by pytest::

    .venv/bin/python bench/import_mbox.py                 # 1,000 mails
    .venv/bin/python bench/import_mbox.py --mails 3000 --json

The mbox is made by ``bench/ingest.py``'s corpus (seeded): 30 % first mails of customers, 70 % their
follow-ups, which quote and name (In-Reply-To, References) an earlier mail of theirs, the way an
archive of a support address reads. A throwaway home with two coordinators; ``gateway import`` runs
as a user would run it (a subprocess, ``--json``, mails written to the outbox Maildir). The figure
is mails over the wall time of the command, start-up included, with its CPU time a mail.

Target (issue 18): 1,000 mails at >= 250 mails/s. Exit 1 when a mail was not processed.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import mailbox
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import COORDINATORS, DOMAIN, SUPPORT, Corpus  # noqa: E402  (beside this script)

TARGET = 250.0


def history(count: int, seed: int) -> list[bytes]:
    corpus = Corpus(seed)
    mails: list[bytes] = []
    first: list[tuple[str, str, str, str, str]] = []  # email, name, locale, message id, subject
    for number in range(count):
        if not first or corpus.rng.random() < 0.3:
            customer = corpus.customer(number)
            mail = corpus.new_request(customer)
            subject = mail.raw.split(b"\nSubject: ", 1)[1].split(b"\r\n", 1)[0].decode()
            first.append((customer.email, customer.name, customer.locale, mail.message_id, subject))
            mails.append(mail.raw)
            continue
        email, name, locale, message_id, subject = corpus.rng.choice(first)
        body = [*corpus.paragraphs(locale, 1, 3, str(number)), corpus.signature(name, locale)]
        raw, _mid = corpus.build(sender=email, sender_name=name, to=SUPPORT, subject="Re: " + subject,
                                 locale=locale, body=body, quote=None, in_reply_to=[message_id])
        mails.append(raw)
    return mails


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # The gateway's bytecode compiled first, as an installed package has it: with PYTHONDONTWRITEBYTECODE
    # (set on this machine) every run would otherwise compile again the modules changed since the last
    # compilation, in the command and in its processor, and the figure would include it.
    spec = importlib.util.find_spec("gateway")
    assert spec is not None and spec.submodule_search_locations
    compileall.compile_dir(next(iter(spec.submodule_search_locations)), quiet=1)
    home = Path(tempfile.mkdtemp(prefix="bench-import-"))
    data = home / "data"
    config = home / "gateway.toml"
    config.write_text(f"""[gateway]
domain = "{DOMAIN}"
secret_key = "bench-import-0123456789abcdef0123456789"
data_dir = "{data}"
locale = "fr"
site_name = "Boutique Exemple"

[[mailboxes]]
address = "{SUPPORT}"
kind = "helpdesk"
""")
    base = [sys.executable, "-m", "gateway"]
    for address, name, locale in COORDINATORS:
        subprocess.run([*base, "people", "--config", str(config), "add", address, "--role", "coordinator",
                        "--name", name, "--locale", locale], check=True, capture_output=True, cwd=home)
    archive = mailbox.mbox(home / "history.mbox")
    raws = history(args.mails, args.seed)
    for raw in raws:
        archive.add(raw)
    archive.close()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([*base, "import", "--config", str(config), str(home / "history.mbox"), "--json"],
                          capture_output=True, text=True, cwd=home)
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    with sqlite3.connect(data / "gateway.db") as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM inbound GROUP BY status").fetchall())
        requests = db.execute("SELECT count(*) FROM requests").fetchone()[0]
        mails_out = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    figures = {"mails": len(raws), "seconds": round(seconds, 2), "mails_per_second": round(len(raws) / seconds, 1),
               "cpu_ms_per_mail": round(cpu * 1000 / len(raws), 2), "inbound": statuses, "requests": requests,
               "outbox_rows": mails_out, "pass": len(raws) / seconds >= TARGET}
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"gateway import: {len(raws):,} mails in {figures['seconds']} s: {figures['mails_per_second']} mails/s, "
              f"{figures['cpu_ms_per_mail']} ms of CPU a mail (target >= {TARGET:g}/s: "
              f"{'pass' if figures['pass'] else 'FAIL'})")
        print(f"  {statuses}; {requests} requests; {mails_out} outbox rows")
    return 0 if statuses.get("processed", 0) == len(raws) else 1


if __name__ == "__main__":
    sys.exit(main())
