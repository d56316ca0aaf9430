"""Score reply extraction against the shared corpora of real replies.

Run as ``.venv/bin/python bench/replies_score.py [-v]``: prints, per corpus, how
many cases ``parse(raw).reply_text`` gets right, and with ``-v`` what it
returned for each failure. ``tests/test_replies.py`` asserts on the same
scores, so this file is the one place that knows how a case is judged.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "replies"
CORPORA = ("crisp", "talon")
_WHITESPACE = re.compile(r"\s+")
_SIGNATURE_LINES = 4  # "the expectation minus its signature": at most this many trailing lines


@dataclass
class Case:
    corpus: str
    name: str
    raw: bytes
    expectation: dict[str, Any]

    @property
    def kind(self) -> str:
        return "exact" if "reply_text" in self.expectation else "contains"


@dataclass
class Score:
    passed: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[Case, str]] = field(default_factory=list)

    def ratio(self, kind: str | None = None) -> float:
        kinds = [kind] if kind else list(self.total)
        total = sum(self.total.get(k, 0) for k in kinds)
        return sum(self.passed.get(k, 0) for k in kinds) / total if total else 1.0

    def summary(self) -> str:
        kinds = sorted(self.total, key=lambda kind: kind != "exact")
        return ", ".join(f"{self.passed.get(kind, 0)}/{self.total[kind]} {kind}" for kind in kinds)


def wrap_body(body: bytes, content_type: str) -> bytes:
    """A bare text or HTML body as the smallest UTF-8 message a client could have sent."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("cp1252", errors="replace")
    headers = ("From: Sender <sender@example.com>\nTo: desk@example.com\nSubject: Re: corpus case\n"
               f"MIME-Version: 1.0\nContent-Type: {content_type}; charset=utf-8\n"
               "Content-Transfer-Encoding: 8bit\n\n")
    return (headers + text).encode("utf-8")


def load_cases(corpus: str) -> Iterator[Case]:
    folder = CORPUS / corpus
    expected: dict[str, dict[str, Any]] = json.loads((folder / "expected.json").read_text("utf-8"))
    for name, expectation in sorted(expected.items()):
        body = (folder / name).read_bytes()
        kind = expectation.get("input", "eml")
        raw = body if kind == "eml" else wrap_body(body, "text/html" if kind == "html" else "text/plain")
        yield Case(corpus, name, raw, expectation)


def _normal(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def _same(actual: str, expected: str, compare: str) -> bool:
    if compare == "nows":
        return _WHITESPACE.sub("", actual) == _WHITESPACE.sub("", expected)
    return _normal(actual) == _normal(expected)


def _same_but_signature(actual: str, expected: str, compare: str) -> bool:
    """``quotes_only`` cases keep the signature we remove: accept the expectation minus a trailing block."""
    lines = _normal(expected).split("\n")
    for keep in range(len(lines) - 1, 0, -1):
        if len([line for line in lines[keep:] if line.strip()]) > _SIGNATURE_LINES:
            break
        if _same(actual, "\n".join(lines[:keep]), compare) and actual.strip():
            return True
    return False


def judge(case: Case, actual: str) -> bool:
    """Whether ``actual`` meets every expectation the corpus states for ``case``."""
    expectation = case.expectation
    if "reply_text" in expectation:
        compare = expectation.get("compare", "exact")
        if not _same(actual, expectation["reply_text"], compare) and not (
            expectation.get("semantics") == "quotes_only"
            and _same_but_signature(actual, expectation["reply_text"], compare)
        ):
            return False
    if any(text not in actual for text in expectation.get("contains", [])):
        return False
    if any(text in actual for text in expectation.get("not_contains", [])):
        return False
    return not (expectation.get("nonempty") and not actual.strip())


def score(corpus: str) -> Score:
    from gateway.mail.parse import parse

    result = Score()
    for case in load_cases(corpus):
        actual = parse(case.raw).reply_text
        result.total[case.kind] = result.total.get(case.kind, 0) + 1
        if judge(case, actual):
            result.passed[case.kind] = result.passed.get(case.kind, 0) + 1
        else:
            result.failures.append((case, actual))
    return result


def _time_per_message() -> float:
    from gateway.mail.parse import parse

    raws = [case.raw for corpus in CORPORA for case in load_cases(corpus)]
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for raw in raws:
            parse(raw)
    return (time.perf_counter() - started) / (rounds * len(raws)) * 1000


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    for corpus in CORPORA:
        result = score(corpus)
        print(f"{corpus}: {result.summary()} ({result.ratio():.0%})")
        for case, actual in result.failures:
            print(f"  FAIL {case.name}")
            if verbose:
                wanted = case.expectation.get("reply_text", case.expectation.get("contains"))
                print(f"    expected: {wanted!r}\n    actual:   {actual!r}")
    print(f"parse, reply included: {_time_per_message():.3f} ms per message")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main(sys.argv[1:]))
