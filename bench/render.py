#!/usr/bin/env python3
"""Rendering cost of one mail (issue 19): subject, text and HTML, the HTML set in the layout and its
CSS inlined, for every built-in mail in both languages.

Run by hand, not by pytest::

    .venv/bin/python bench/render.py            # 200 rounds of every mail
    .venv/bin/python bench/render.py --json

Each round renders every mail once, in French and in English, with the context of
``tests/test_templates.py`` (every variable a template reads). Printed: the median and the p99 of one
mail, all parts, and of its parts alone (the HTML with the layout and inlining, the text), over
every mail and round, after one warm-up round (templates are compiled, and the layout set and inlined,
once per process: ``render._frame``).
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


def _quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_us": round(statistics.median(ordered) * 1e6, 1),
            "p99_us": round(ordered[int(len(ordered) * 0.99) - 1] * 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-render-"))
    context = mail_context()
    whole: list[float] = []
    for round_number in range(args.rounds + 1):
        for mail in MAILS:
            event, audience = mail.split(".")
            for locale in ("fr", "en"):
                began = time.perf_counter()
                render.render_mail(home, event, audience, locale, context)
                if round_number:
                    whole.append(time.perf_counter() - began)
    html_only: list[float] = []
    for mail in MAILS * 20:
        event, audience = mail.split(".")
        template = render.environment(home).get_template(f"mail/fr/{event}.{audience}.html.j2")
        began = time.perf_counter()
        head, tail, css = render._frame(home, "fr", str(context["site_name"]))
        len(head + render.css_inline.inline_fragment(template.render({**context, "locale": "fr"}), css) + tail)
        html_only.append(time.perf_counter() - began)
    figures = {"mails": len(MAILS) * 2, "rounds": args.rounds, "mail": _quantiles(whole),
               "html_with_layout_and_inlining": _quantiles(html_only)}
    if args.json:
        json.dump(figures, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{len(MAILS) * 2} mails x {args.rounds} rounds: one mail (subject, text, HTML in the layout, CSS "
              f"inlined) median {figures['mail']['median_us']} µs, p99 {figures['mail']['p99_us']} µs; "
              f"its HTML part alone median {figures['html_with_layout_and_inlining']['median_us']} µs, "
              f"p99 {figures['html_with_layout_and_inlining']['p99_us']} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
