"""Log lines (CONTRACT §11): JSON off a terminal, text on one, the message's number on lines about it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway.logs import JsonLines, OncePerMinute, _AboutTheMessage, about, applying, configure_logging


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """A JSON handler on the ``gateway.test`` logger, as ``configure_logging`` makes it off a terminal."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(_AboutTheMessage())
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("gateway.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def _read(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_about_a_message_names_it_and_others_do_not(lines: io.StringIO) -> None:
    log = logging.getLogger("gateway.test")
    log.info("message %s: processed: « public comment »", 7, extra=about(7, "<a@b.example>"))
    log.warning("imap %s: reconnecting", "support")
    about_it, other = _read(lines)
    assert about_it["message"] == 7 and about_it["message_id"] == "<a@b.example>"
    assert about_it["event"] == "message 7: processed: « public comment »"
    assert (about_it["level"], about_it["logger"]) == ("info", "gateway.test")
    assert str(about_it["time"]).endswith("Z")
    assert "message" not in other and other["level"] == "warning"


def test_what_is_logged_while_a_message_is_applied_carries_its_number(lines: io.StringIO) -> None:
    log = logging.getLogger("gateway.test")
    with applying(12, "<x@y.example>"):
        log.info("rule routed it to sales")
        log.info("named explicitly", extra=about(13))
    log.info("after")
    during, named, after = _read(lines)
    assert (during["message"], during["message_id"]) == (12, "<x@y.example>")
    assert (named["message"], named["message_id"]) == (13, None)
    assert "message" not in after


def test_a_traceback_is_one_field_of_one_line(lines: io.StringIO) -> None:
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logging.getLogger("gateway.test").exception("message %s failed", 3, extra=about(3))
    [line] = _read(lines)
    assert line["message"] == 3 and "ZeroDivisionError: division by zero" in str(line["error"])


def test_on_a_terminal_the_lines_are_text(monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    terminal = Terminal()
    configure_logging(terminal)
    logging.getLogger("gateway.test").info("message %s stored", 5, extra=about(5))
    assert " INFO gateway.test: message 5 stored" in terminal.getvalue()
    assert not terminal.getvalue().startswith("{")


def test_a_flood_of_one_kind_of_record_is_one_line_a_minute_saying_how_many_were_held(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("gateway.logs.time.monotonic", lambda: now[0])
    once = OncePerMinute()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, None)

    assert once.filter(record("accept failed"))
    assert [once.filter(record("accept failed")) for _ in range(5)] == [False] * 5
    assert once.filter(record("another kind")), "each kind has its own minute"
    now[0] += 61
    line = record("accept failed")
    assert once.filter(line) and line.msg == "accept failed (5 more like it in the last minute)"
