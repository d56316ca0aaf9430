#!/usr/bin/env python3
"""mail-parser and flanker against the gateway's parser, on the same mail (issue 20).

The product's design card named these two libraries; the gateway parses with the standard library
(``gateway.mail.parse``), reads delivery reports itself (``gateway.mail.bounces``) and strips replies
itself (``gateway.mail.replies``). This measures, in one run and on the same messages:

- **speed**: mails/s to get what the pipeline needs of a mail (From, To, Cc, Subject, Message-ID,
  the text body, the attachments' names), on the benchmark corpus (``ingest.py``'s, seeded);
- **addresses**: the From address each one reads, against the address written in the raw header
  (messages where it differs or where the parser fails), on all the corpora;
- **defects**: messages each one says are malformed (mail-parser keeps the standard library's
  defects; flanker has no such list and raises instead, counted as failures);
- **bounces**: sisimai's 588 delivery reports (``../shared/corpus``) found as reports, and false
  alarms on the benchmark corpus (customers' mail). mail-parser has no bounce detection.

The two libraries are not the gateway's dependencies: install them beside it, in a venv of their own,
and name its site-packages (they are put after the gateway's own, so its versions win)::

    python3 -m venv /tmp/parsers && /tmp/parsers/bin/pip install mail-parser flanker
    .venv/bin/python bench/parsers.py --libraries /tmp/parsers/lib/python3.11/site-packages [--json]
"""

from __future__ import annotations

import argparse
import email
import json
import logging
import re
import sys
import time
from collections.abc import Callable
from email.policy import compat32
from email.utils import parseaddr
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from import_mbox import history  # noqa: E402  (beside this script: ingest.py's corpus, seeded)

from gateway.mail.parse import parse  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"
Extract = Callable[[bytes], dict[str, Any]]


def gateway_extract(raw: bytes) -> dict[str, Any]:
    parsed = parse(raw)
    return {"from": parsed.sender.address if parsed.sender else "", "to": [a.address for a in parsed.to],
            "subject": parsed.subject, "text": parsed.text, "defects": parsed.defects,
            "files": [a.filename for a in parsed.attachments],
            "report": parsed.classification.delivery is not None and parsed.classification.delivery.kind != "delivered"}


def stdlib_extract(raw: bytes) -> dict[str, Any]:
    """The floor: the standard library's compat32 parse and the same fields, nothing decoded."""
    message = email.message_from_bytes(raw, policy=compat32)
    body = next((part.get_payload(decode=True) for part in message.walk()
                 if part.get_content_type() == "text/plain"), b"")
    return {"from": parseaddr(str(message.get("From", "")))[1], "to": message.get_all("To", []),
            "subject": message.get("Subject"), "text": body, "defects": message.defects,
            "files": [part.get_filename() for part in message.walk() if part.get_filename()], "report": None}


def mail_parser_extract(raw: bytes) -> dict[str, Any]:
    import mailparser  # the optional library, found only with --libraries

    message = mailparser.parse_from_bytes(raw)
    senders = message.from_
    return {"from": senders[0][1] if senders else "", "to": [a for _, a in message.to], "subject": message.subject,
            "text": "\n".join(message.text_plain), "defects": message.defects,
            "files": [a["filename"] for a in message.attachments], "report": None}


def flanker_extract(raw: bytes) -> dict[str, Any]:
    from flanker import mime  # the optional library, found only with --libraries
    from flanker.addresslib import address

    message = mime.from_string(raw)
    sender = address.parse(message.headers.get("From", "") or "")
    text = next((part.body for part in message.walk(with_self=True) if part.content_type == "text/plain"), "")
    files = [part.detected_file_name for part in message.walk() if part.is_attachment()]
    return {"from": getattr(sender, "address", "") or "", "to": [a.address for a in address.parse_list(
                message.headers.get("To", "") or "")],
            "subject": message.subject, "text": text, "defects": None, "files": files, "report": message.is_bounce()}


def rate(extract: Extract, raws: list[bytes], rounds: int = 3) -> float:
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        for raw in raws:
            try:
                extract(raw)
            except Exception:  # noqa: BLE001, S112 (a failure is counted below, not here)
                continue
        best = max(best, len(raws) / (time.perf_counter() - started))
    return best


_RAW_FROM = re.compile(rb"^From:[ \t]*(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


def written_from(raw: bytes) -> str:
    """The From address as the raw header writes it, read by a plain pattern, for the comparison."""
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    match = _RAW_FROM.search(head)
    if not match:
        return ""
    value = match.group(1).decode("utf-8", "replace")
    angle = re.search(r"<([^<>@\s]+@[^<>\s]+)>", value)
    bare = re.search(r"[^\s<>\"(),;:]+@[^\s<>\"(),;:]+", value)
    return (angle.group(1) if angle else bare.group(0) if bare else "").lower()


def audit(extract: Extract, raws: list[bytes]) -> dict[str, int]:
    failures = from_differs = defective = reports = 0
    for raw in raws:
        try:
            got = extract(raw)
        except Exception:  # noqa: BLE001 (each library fails in its own way)
            failures += 1
            continue
        from_differs += (got["from"] or "").lower() != written_from(raw)
        defective += bool(got["defects"])
        reports += bool(got["report"])
    return {"messages": len(raws), "failures": failures, "from_differs": from_differs,
            "defective": defective, "reports": reports}


def shared_corpus() -> dict[str, list[bytes]]:
    sisimai = SHARED / "bounces" / "sisimai"
    expected = json.loads((sisimai / "expected.json").read_text())
    replies = [path.read_bytes() for path in sorted((SHARED / "replies").rglob("*.eml"))]
    return {"sisimai_reports": [(sisimai / name).read_bytes() for name, case in sorted(expected.items())
                                if case["is_bounce"]],
            "sisimai_other": [(sisimai / name).read_bytes() for name, case in sorted(expected.items())
                              if not case["is_bounce"]],
            "reply_corpora_eml": replies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--libraries", help="site-packages holding mail-parser and flanker")
    parser.add_argument("--mails", type=int, default=2000, help="benchmark corpus size (default 2000)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.libraries:
        sys.path.append(args.libraries)
    logging.disable(logging.WARNING)  # flanker's grammar warnings at import
    extracts: dict[str, Extract] = {"stdlib compat32": stdlib_extract, "gateway": gateway_extract}
    for name, extract in (("mail-parser", mail_parser_extract), ("flanker", flanker_extract)):
        try:
            extract(b"From: a@b.example\r\n\r\nx")
        except ImportError:
            print(f"{name}: not installed (see --libraries)", file=sys.stderr)
            continue
        extracts[name] = extract
    benchmark = history(args.mails, 7)
    sets = {"benchmark": benchmark, **shared_corpus()}
    results: dict[str, Any] = {name: {"mails_per_s": round(rate(extract, benchmark)),
                                      **{label: audit(extract, raws) for label, raws in sets.items()}}
                               for name, extract in extracts.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"{'':16} {'mails/s':>8}  " + "  ".join(f"{label:>20}" for label in sets))
    for name, figures in results.items():
        cells = ["{failures}/{from_differs}/{defective}/{reports}".format(**figures[label]) for label in sets]
        print(f"{name:16} {figures['mails_per_s']:8,}  " + "  ".join(f"{cell:>20}" for cell in cells))
    print("cells: failures / From address differs from the header / reported defective / found as delivery reports")
    print("sets: " + ", ".join(f"{label} {len(raws)}" for label, raws in sets.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
