#!/usr/bin/env python3
"""Rendering cost per mail (issue 19): median and p99 of the text part, of the HTML part (its
template, the layout around it, the CSS inlined) and of the whole mail, in French and in English.

Why three figures: the whole mail is what the processor pays for each notification; the text part is
first-class (many people read only it) and cheap; the HTML part is where the layout and css-inline
cost, and the one to watch when a template or the layout grows.

Run by hand, not by pytest::

    .venv/bin/python bench/render.py                 # 200 rounds
    .venv/bin/python bench/render.py --json

The template set measured is the built-in one (``gateway/defaults/templates``: an empty home), with
the context of ``tests/test_templates.py`` (every variable a template reads). Each round renders every
built-in mail once in each locale, and each part on its own: so every figure is over the same
``mails × rounds`` samples. One warm-up round first, not counted: templates are compiled, and the
layout set and inlined, once per process (``render._frame``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_templates import MAILS, mail_context  # noqa: E402  (the tests' context: every variable)

from gateway.outbound import render  # noqa: E402

LOCALES = ("fr", "en")
PARTS = ("text", "html", "mail")
PART_NAMES = {"text": "text part alone", "html": "HTML part alone (layout, CSS inlined)",
              "mail": "whole mail (subject, text, HTML)"}


def measure(home: Path, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Seconds taken by each part, by locale: ``{locale: {part: [one sample a mail and round]}}``."""
    context = mail_context()
    mails = [mail.split(".") for mail in MAILS]  # "quote_sent.customer": event, audience
    subjects = {(event, audience, locale): render.render_mail(home, event, audience, locale, context).subject
                for event, audience in mails for locale in LOCALES}  # the HTML's <title>, before the clock
    samples: dict[str, dict[str, list[float]]] = {locale: {part: [] for part in PARTS} for locale in LOCALES}
    for round_number in range(rounds + 1):
        for event, audience in mails:
            for locale in LOCALES:
                began = time.perf_counter()
                render.render_text(home, event, audience, locale, context)
                text_done = time.perf_counter()
                render.render_html(home, event, audience, locale, context, subjects[event, audience, locale])
                html_done = time.perf_counter()
                render.render_mail(home, event, audience, locale, context)
                mail_done = time.perf_counter()
                if round_number:  # round 0 warms up
                    samples[locale]["text"].append(text_done - began)
                    samples[locale]["html"].append(html_done - text_done)
                    samples[locale]["mail"].append(mail_done - html_done)
    return samples


def median_and_p99(seconds: list[float]) -> dict[str, float]:
    return {"median_us": round(statistics.median(seconds) * 1e6, 1),
            "p99_us": round(statistics.quantiles(seconds, n=100)[98] * 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-render-") as home:
        samples = measure(Path(home), args.rounds)
    figures = {"templates": "built-in", "mails": len(MAILS), "rounds": args.rounds,
               "samples": args.rounds * len(MAILS),
               **{locale: {part: median_and_p99(samples[locale][part]) for part in PARTS} for locale in LOCALES}}
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    print(f"built-in templates: {len(MAILS)} mails x {args.rounds} rounds = {figures['samples']} samples "
          "a part and locale, µs")
    print(f"{'':40} {'fr median':>10} {'fr p99':>8} {'en median':>10} {'en p99':>8}")
    for part in PARTS:
        fr, en = figures["fr"][part], figures["en"][part]
        print(f"{PART_NAMES[part]:40} {fr['median_us']:>10} {fr['p99_us']:>8} {en['median_us']:>10} {en['p99_us']:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
