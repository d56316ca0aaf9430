"""CPU per mail of processing alone: the messages of a kept ingest home, applied again in-process.

    .venv/bin/python bench/ingest.py --only max --keep          # prints "kept /tmp/gateway-bench-..."
    .venv/bin/python bench/apply.py /tmp/gateway-bench-.../max [--runs 3] [--profile FILE] [--json]

The ingest benchmark's figures swing by a third from one run to the next on this VM (the
SMTP clients, the disk and the other processes all share two cores), too much to see a
change of 10 % in processing. This one takes the database and the raw files of a finished
ingest run, copies the database, puts it back as it was before processing (every row that
processing wrote removed, every message pending again) and applies the same messages the way
``gateway serve`` does: ``read_and_parse`` (reading and parsing, in the serving process) then
``process_batch`` (the processor, which holds SQLite's writer lock), batches of
``PROCESS_TOGETHER``. It reports the CPU of each step per mail; each run starts from the copy.
Nothing is delivered.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.context import open_context  # noqa: E402
from gateway.intake.admission import PROCESS_TOGETHER  # noqa: E402
from gateway.models import Base  # noqa: E402
from gateway.pipeline.process import process_batch, read_and_parse  # noqa: E402
from gateway.runtime import settle  # noqa: E402
from gateway.settings import load  # noqa: E402

KEPT_TABLES = {"alembic_version", "inbound", "people", "products", "imap_state"}


def reset(database: Path) -> tuple[list[int], set[int]]:
    """Back to before processing: people made by processing (after the first message came) and every
    row processing wrote go, every message is pending again. Returns the messages in the order they
    were processed (replies name participants by id, and ids follow that order, not the messages'
    ids), and those that opened a request."""
    with sqlite3.connect(database) as db:
        order = [row[0] for row in db.execute("SELECT id FROM inbound ORDER BY processed_at, id")]
        opened = {row[0] for row in db.execute("SELECT id FROM inbound WHERE decision LIKE 'new % request #%'")}
        db.execute("PRAGMA foreign_keys=OFF")
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                db.execute(f"DELETE FROM {table.name}")
        db.execute("DELETE FROM people WHERE created_at >= (SELECT min(received_at) FROM inbound)")
        db.execute("UPDATE inbound SET status = 'pending', decision = '', message_id = NULL, request_id = NULL, "
                   "processed_at = NULL")
    with sqlite3.connect(database) as db:
        db.execute("VACUUM")
    return order, opened


def _unverified(database: Path) -> int:
    """Comments kept private because their sender was not the participant the reply address names."""
    with sqlite3.connect(database) as db:
        return int(db.execute("SELECT count(*) FROM inbound WHERE decision LIKE '%unverified%'").fetchone()[0])


def run(home: Path, profile: cProfile.Profile | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gateway-apply-") as temp:
        data = Path(temp)
        with sqlite3.connect(home / "data" / "gateway.db") as kept, sqlite3.connect(data / "gateway.db") as copy:
            kept.backup(copy)  # with what is still in the write-ahead log, which a file copy would miss
        for kept in ("raw", "attachments"):
            (data / kept).symlink_to(home / "data" / kept)
        ids, opened = reset(data / "gateway.db")
        count = len(ids)
        context = open_context(load(str(home / "gateway.toml"), str(data)))
        settle()  # as the processor does
        parse_cpu = apply_cpu = 0.0
        by_kind = {"new": [0.0, 0], "reply": [0.0, 0]}  # CPU and mails of the batches all of one kind
        started = time.perf_counter()
        statuses: dict[str, int] = {}
        for start in range(0, count, PROCESS_TOGETHER):
            batch = ids[start:start + PROCESS_TOGETHER]
            before = time.process_time()
            ahead = read_and_parse(context, batch)
            between = time.process_time()
            if profile:
                profile.enable()
            for outcome in process_batch(context, batch, ahead):
                statuses[outcome.status] = statuses.get(outcome.status, 0) + 1
            if profile:
                profile.disable()
            spent = time.process_time() - between
            parse_cpu += between - before
            apply_cpu += spent
            kinds = {"new" if inbound_id in opened else "reply" for inbound_id in batch}
            if len(kinds) == 1:
                kind = by_kind[kinds.pop()]
                kind[0] += spent
                kind[1] += len(batch)
        context.engine.dispose()
        if statuses.get("processed") != count:
            raise SystemExit(f"not every message was processed: {statuses}")
        if _unverified(data / "gateway.db") > _unverified(home / "data" / "gateway.db"):
            raise SystemExit("replies took other participants' tokens: not the ingest run's processing")
        return {"mails": count, "read_ahead_ms_per_mail": 1000 * parse_cpu / count,
                "apply_ms_per_mail": 1000 * apply_cpu / count,
                **{f"apply_{kind}_ms_per_mail": 1000 * cpu / max(mails, 1) for kind, (cpu, mails) in by_kind.items()},
                "wall_s": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path, help="a run's folder in a home kept by ingest.py --keep (…/max)")
    parser.add_argument("--runs", type=int, default=3, help="runs, each from the same copy (default 3)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of process_batch (all runs) to this file")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    args = parser.parse_args()
    if not (args.home / "data" / "gateway.db").exists():
        parser.error(f"{args.home}: no data/gateway.db here (give the max/ folder of a kept ingest home)")
    profile = cProfile.Profile() if args.profile else None
    runs = [run(args.home, profile) for _ in range(args.runs)]
    if profile:
        profile.dump_stats(str(args.profile))
    labels = {"read_ahead_ms_per_mail": "read ahead (serving process)", "apply_ms_per_mail": "apply (processor)",
              "apply_new_ms_per_mail": "  a new request", "apply_reply_ms_per_mail": "  a reply"}
    best = {key: min(r[key] for r in runs) for key in labels}
    if args.json:
        print(json.dumps({"runs": runs, "best": best}, indent=2))
        return 0
    print(f"{runs[0]['mails']:.0f} mails, {len(runs)} runs (best of them, CPU ms per mail):")
    for key, label in labels.items():
        print(f"  {label:<29} {best[key]:.2f}   runs: {', '.join(f'{r[key]:.2f}' for r in runs)}")
    print(f"  one processor at 100 % of a core applies {1000 / best['apply_ms_per_mail']:.0f} mails/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
