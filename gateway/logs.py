"""How every process of the gateway logs: one line per event on standard error (CONTRACT §11).

On a terminal a line is text for a person. Anywhere else (a service manager, a container, a pipe to a
collector) it is one JSON object: ``time``, ``level``, ``logger``, ``event`` (the text), ``error``
(a traceback, when there is one), and on every line about a stored message its number
(``message``) and its Message-ID (``message_id``).

A line is about a message when its call says so (``extra=about(number, message_id)``) or when it is
logged while that message is applied (``with applying(number):``): then what the rules, the commands
and the mail writer log on the way carries the number too, without being told it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = ("dramatiq", "alembic", "uvicorn", "mail.log", "pika", "fontTools")  # their INFO lines say nothing about
# mail (fontTools: some 75 lines of font subsetting for each delivery note)

_applying: ContextVar[tuple[int, str | None] | None] = ContextVar("gateway_applying", default=None)


def about(number: int | None, message_id: str | None = None) -> dict[str, Any]:
    """The ``extra`` of a log call about a stored message."""
    return {"message_number": number, "message_id": message_id}


@contextmanager
def applying(number: int, message_id: str | None = None) -> Iterator[None]:
    """Every line logged inside is about this message (in this thread)."""
    token = _applying.set((number, message_id))
    try:
        yield
    finally:
        _applying.reset(token)


class _AboutTheMessage(logging.Filter):
    """Gives a line logged while a message is applied that message's number, unless it names one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "message_number", None) is None:
            current = _applying.get()
            if current is not None:
                record.message_number, record.message_id = current
        return True


class JsonLines(logging.Formatter):
    """One JSON object a line (``ensure_ascii`` off: a French subject stays readable)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname.lower(), "logger": record.name, "event": record.getMessage()}
        number = getattr(record, "message_number", None)
        if number is not None:
            line["message"] = number
            line["message_id"] = getattr(record, "message_id", None)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(stream: TextIO | None = None) -> None:
    """Log INFO and above to ``stream`` (standard error): text on a terminal, JSON lines elsewhere.
    Does nothing where logging was configured already (a test's capture, say)."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.addFilter(_AboutTheMessage())
    handler.setFormatter(logging.Formatter(TEXT_FORMAT) if stream.isatty() else JsonLines())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    for noisy in QUIET:
        logging.getLogger(noisy).setLevel(logging.WARNING)


class OncePerMinute(logging.Filter):
    """Lets one record of a kind through a minute, then says how many it held back. Under a flood of
    connections asyncio logs each failed accept (7.5 MB/s of log was seen): one line a minute says
    as much."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        now, kind = time.monotonic(), str(record.msg)
        last, held = self._last.get(kind, (-60.0, 0))
        if now - last < 60:
            self._last[kind] = (last, held + 1)
            return False
        self._last[kind] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like it in the last minute)"
        return True
