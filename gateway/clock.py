"""The one clock: every "now" of the gateway comes from ``utcnow``.

Unit tests move it with time-machine, which moves ``datetime.now`` itself. End-to-end tests move a
running ``gateway serve`` with ``[gateway] clock_file`` (CONTRACT §10): "now" is the real time plus
the seconds written in that file, read at every use, so a test writes ``86400`` and the next sweep
lives a day later. Without the file, ``utcnow`` is ``datetime.now`` and nothing else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

_offset_file: Path | None = None


def use_offset_file(path: Path | None) -> None:
    """Make ``utcnow`` add the seconds in ``path`` (None: the real time). Set once per process, at start."""
    global _offset_file
    _offset_file = path


def offset() -> timedelta:
    """The seconds the clock file holds; a missing or empty file is 0."""
    if _offset_file is None:
        return timedelta(0)
    try:
        text = _offset_file.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return timedelta(0)
    return timedelta(seconds=float(text)) if text else timedelta(0)


def iso_utc(value: datetime | None) -> str | None:
    """A stored time (naive UTC) as JSON shows it: ``2026-12-06T09:30:00Z``; None stays None."""
    return value.isoformat(timespec="seconds") + "Z" if value else None


def utcnow() -> datetime:
    """Now, in UTC, without a time zone (how the database stores every date)."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now + offset() if _offset_file is not None else now
