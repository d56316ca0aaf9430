"""Cost of the rules engine: N site rules evaluated over M messages.

    .venv/bin/python bench/rules.py [--rules 200] [--messages 10000] [--json]

Writes N generated site rules (regex searches on text and subject, equality and list
membership tests, a few that match) into a throwaway home, loads them with the real
loader after the built-in ones, and evaluates the table for M generated facts the way
the pipeline does (``conditions.matches`` on each rule of the event). Reports µs per
message per rule and per message. `bench/ingest.py --rules N` measures the same table
inside the running gateway.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.rules.conditions import matches  # noqa: E402
from gateway.rules.loader import load_rules  # noqa: E402

WORDS = ("colis commande livraison remboursement facture retour garantie lampe table chaise délai "
         "order refund invoice parcel broken late warranty lamp table chair delivery").split()


def site_rules(count: int) -> str:
    """``count`` rules of the shapes sites write: keyword routing, labels, sender domains."""
    shapes = [
        'text =~~ "(?i){word}" and role == "requester"',
        'subject =~~ "(?i)\\\\b{word}\\\\b"',
        'sender_domain == "{word}.example" or "{word}" in labels',
        'kind == "helpdesk" and status == "new" and subject =~~ "(?i){word}-{n}"',
    ]
    rules = []
    for n in range(count):
        word = WORDS[n % len(WORDS)]
        condition = shapes[n % len(shapes)].format(word=word, n=n)
        rules.append(f'[[rules]]\nname = "site-{n}"\nevent = "message"\ncondition = \'{condition}\'\n'
                     f'actions = [{{ label = "l{n % 7}" }}]\n')
    return "\n".join(rules)


def message_facts(count: int, seed: int = 7) -> list[dict[str, object]]:
    rng = random.Random(seed)
    facts = []
    for n in range(count):
        body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 120)))
        facts.append({
            "event": "message", "kind": "helpdesk", "mailbox": "support@shop.example",
            "subject": " ".join(rng.choice(WORDS) for _ in range(5)), "text": body,
            "sender": f"c{n}@client{n % 50}.example", "sender_domain": f"client{n % 50}.example",
            "role": "requester", "unverified": False, "visibility": "public", "explicit_visibility": False,
            "status": "new", "previous_status": None, "labels": [], "assignee": None,
            "expected_response": "coordinator", "sticky_private": False, "has_supplier": False,
            "include_supplier": False, "mentioned_products": [], "product": None,
        })
    return facts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rules-bench"))
    (home / "rules").mkdir()
    (home / "rules" / "site.toml").write_text(site_rules(args.rules))
    table = [rule for rule in load_rules(home) if rule.event == "message"]
    facts = message_facts(args.messages)
    matched = 0
    started = time.perf_counter()
    for current in facts:
        for rule in table:
            matched += matches(rule.condition, current)
    elapsed = time.perf_counter() - started
    result = {
        "rules": len(table), "messages": args.messages, "matches": matched,
        "us_per_message_per_rule": round(elapsed / (args.messages * len(table)) * 1e6, 2),
        "ms_per_message": round(elapsed / args.messages * 1e3, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['rules']} message rules over {args.messages} messages: "
              f"{result['us_per_message_per_rule']} µs per message per rule, "
              f"{result['ms_per_message']} ms per message, {matched} matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
