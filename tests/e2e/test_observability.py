"""What an operator sees of a running gateway (CONTRACT §11): ``GET /metrics`` and the log lines."""

from __future__ import annotations

import json
import smtplib
import urllib.request
from pathlib import Path
from typing import Any

from conftest import Gateway, mail, write_home
from prometheus_client.parser import text_string_to_metric_families

CUSTOMER = "marie@client.example"


def _scrape(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.http_port}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=")
        text = answer.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _json_lines(gw: Gateway) -> list[dict[str, Any]]:
    """The serve's log lines (its standard error is a file, not a terminal: JSON)."""
    return [json.loads(line) for line in gw.log.read_text().splitlines() if line.startswith("{")]


def test_metrics_count_what_smtp_took_and_refused_and_what_was_applied(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home")).start()
    try:
        before = _scrape(gw)
        assert before[("gateway_mails_accepted_total", ())] == 0
        assert before[("gateway_queue_depth", (("queue", "inbound"),))] == 0
        for number in range(3):
            gw.send(mail(CUSTOMER, "support@shop.example", f"Colis {number}", "Il est arrivé abîmé."))
        with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10) as client:
            client.ehlo()
            client.mail(CUSTOMER)
            assert client.rcpt("nobody@shop.example")[0] == 550
            assert client.rcpt("support+forged123@shop.example")[0] == 550
        gw.wait_idle()
        after = _scrape(gw)
    finally:
        assert gw.stop() == 0
    assert after[("gateway_mails_accepted_total", ())] == 3
    assert after[("gateway_mails_refused_total", (("reason", "unknown_recipient"),))] == 1
    assert after[("gateway_mails_refused_total", (("reason", "forged_token"),))] == 1
    assert after[("gateway_messages_applied_total", (("outcome", "processed"),))] == 3
    assert after[("gateway_apply_seconds_count", ())] == 3
    assert after[("gateway_apply_seconds_bucket", (("le", "+Inf"),))] == 3
    assert after[("gateway_outbox_pending", ())] == 0 and after[("gateway_outbox_failed", ())] == 0
    assert after[("gateway_queue_depth", (("queue", "outbox"),))] == 0
    assert after[("gateway_deadlines_due", ())] == 0


def test_log_lines_are_json_and_those_about_a_message_carry_its_number_and_message_id(tmp_path: Path) -> None:
    gw = Gateway(write_home(tmp_path / "home")).start()
    try:
        gw.send(mail(CUSTOMER, "support@shop.example", "Colis", "Bonjour", message_id="<colis-1@client.example>"))
        gw.wait_idle()
    finally:
        assert gw.stop() == 0
    lines = _json_lines(gw)
    assert lines and all({"time", "level", "logger", "event"} <= line.keys() for line in lines)
    [stored] = [line for line in lines if "stored as message" in line["event"]]
    [applied] = [line for line in lines if ": processed: new helpdesk request" in line["event"]]
    assert stored["message"] == applied["message"] == 1
    assert stored["message_id"] == applied["message_id"] == "<colis-1@client.example>"
    assert all("message" not in line for line in lines if line["logger"] == "gateway.outbound")
