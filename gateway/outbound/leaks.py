"""The leak guard: a mail to a customer must not carry text that the customer may not see.

Quote stripping can miss a quoted private comment (an unusual client, a reply written in
the middle of the history), so every customer mail is compared, after normalising case,
punctuation and quote markers, with the request's private comments, notes and unverified
comments. A shared run of ``RUN`` words is a leak; single words and short phrases are not.

A run the gateway's own template writes in that mail is no one's secret: an unverified comment
that repeats a mail's footer (a stranger's on purpose, or a reply quoting the gateway's mail)
would otherwise hold every mail to the customer. The template's own text is the mail rendered
with the words people wrote in it left out (``ours``), asked for only when a run is shared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

RUN = 8
SHORTEST = 5  # a secret shorter than this many words is too common a phrase to guard
_WORD = re.compile(r"\w+", re.UNICODE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _runs(tokens: list[str], size: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + size]) for i in range(len(tokens) - size + 1)}


def find_leak(text: str, secrets: Iterable[str], ours: Callable[[], str] = str) -> str | None:
    """The first passage of a secret that the text repeats and ``ours()`` (the template's own words in
    that text) does not, or None."""
    sent = words(text)
    own: list[str] | None = None
    for secret in secrets:
        tokens = words(secret)
        if len(tokens) < SHORTEST:
            continue
        size = min(RUN, len(tokens))
        shared = _runs(tokens, size) & _runs(sent, size)
        if shared:
            own = words(ours()) if own is None else own
            shared -= _runs(own, size)
        if shared:
            first = min(shared, key=lambda run: _position(tokens, run))
            return " ".join(first)
    return None


def _position(tokens: list[str], run: tuple[str, ...]) -> int:
    for index in range(len(tokens) - len(run) + 1):
        if tuple(tokens[index:index + len(run)]) == run:
            return index
    return len(tokens)
