"""The command line's promises (CONTRACT §1-2): exit codes, one clear line, one configuration for all."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_home

from gateway.cli.main import main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listed = capsys.readouterr().out
    for command in ("serve", "worker", "parse", "import", "requests", "people", "products", "replay", "check",
                    "comments", "orders", "stats", "sweep", "payments", "subscriptions"):
        assert command in listed


def test_sweep_does_what_is_due_once_and_says_so(tmp_path: Path) -> None:
    """``gateway sweep`` (for cron, or to catch up by hand) under a clock moved by ``clock_file``."""
    config = write_home(tmp_path, extra='clock_file = "clock"', orders_mailbox="acceptance_hours = 1")
    env = {**os.environ, "GATEWAY_CONFIG": str(config)}

    def gateway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=60)

    (tmp_path / "order.json").write_text('{"customer": {"email": "jean@client.example"}, "subject": "Logo", '
                                         '"items": [{"description": "Logo", "quantity": 1, "unit_price": "9.00"}]}')
    assert gateway("orders", "create", "order.json").returncode == 0
    outbox = tmp_path / "var" / "outbox" / "new"
    placed = set(outbox.iterdir())
    assert gateway("sweep").stdout == "nothing was due\n"
    (tmp_path / "clock").write_text(str(2 * 3600))
    swept = gateway("sweep", "--json")
    assert swept.returncode == 0
    assert json.loads(swept.stdout) == {"quotes_expired": [], "failed": [], "mails": 1, "deadlines": [
        "deadline 1 (acceptance of #1): cancelled (not accepted within 1 hours)"]}
    assert gateway("sweep").stdout == "nothing was due\n", "once"
    [told] = set(outbox.iterdir()) - placed
    cancelled = email.message_from_bytes(told.read_bytes(), policy=email.policy.default)
    assert (cancelled["To"], "annulée" in cancelled["Subject"]) == ("jean@client.example", True), "sent by the command"


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["requests", "show", "not-a-number"])
    assert done.value.code == 2
    assert main(["replay"]) == 2
    assert "give a stored message NUMBER or --failed" in capsys.readouterr().err


def test_two_mailboxes_with_one_address_are_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_home(tmp_path)
    (tmp_path / "mailboxes").mkdir()
    (tmp_path / "mailboxes" / "again.toml").write_text('address = "support@shop.example"\n')
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    assert main(["check"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == "gateway: two mailboxes have the address support@shop.example: keep one"


def test_a_mailbox_off_the_domain_and_a_missing_config_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path, sections='[[mailboxes]]\naddress = "sales@elsewhere.example"\n')
    assert main(["check", "--config", str(config)]) == 1
    assert "sales@elsewhere.example is not on the gateway's domain shop.example" in capsys.readouterr().err
    assert main(["check", "--config", str(tmp_path / "none.toml")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path)
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "elsewhere"))
    assert main(["check", "--json"]) == 0
    assert str(tmp_path / "elsewhere") in capsys.readouterr().out


def test_a_worker_without_a_broker_says_what_to_do(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["worker", "--config", str(write_home(tmp_path))]) == 1
    assert "gateway worker needs broker_url" in capsys.readouterr().err


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path) -> None:
    """``gateway ... --json | head``: no traceback, no "Exception ignored", the status of SIGPIPE."""
    message = tmp_path / "long.eml"
    message.write_bytes(b"From: a@client.example\nSubject: long\n\n" + b"a line of text\n" * 20_000)
    pipeline = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m gateway parse {message} --json | head -c 10 >/dev/null; "
                       "echo ${PIPESTATUS[0]}"], capture_output=True, text=True, timeout=60)
    assert pipeline.stderr == ""
    assert pipeline.stdout.strip() == "141"


@pytest.mark.parametrize("key, says", [('""', "secret_key is empty"), ('"change-me"', "the example's 'change-me'"),
                                       ('"short-but-not-empty"', "secret_key has 19 characters")])
@pytest.mark.parametrize("command", [["check"], ["serve", "--smtp-port", "0"], ["worker"]])
def test_serve_worker_and_check_refuse_a_secret_anyone_could_know(tmp_path: Path, key: str, says: str,
                                                                 command: list[str]) -> None:
    config = write_home(tmp_path)
    config.write_text(re.sub(r'secret_key = ".*"', f"secret_key = {key}", config.read_text()))
    done = subprocess.run([sys.executable, "-m", "gateway", *command, "--config", str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert says in line and "at least 32 characters" in line and "token_urlsafe" in line


def test_the_key_may_live_in_a_file_of_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_home(tmp_path)
    config.write_text(re.sub(r'secret_key = ".*"', 'secret_key_file = "var/secret_key"', config.read_text()))
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    assert main(["check"]) == 1
    assert "secret_key is empty" in capsys.readouterr().err
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "secret_key").write_text("k" * 43 + "\n")
    assert main(["check"]) == 0


def test_the_callers_umask_is_given_back(capsys: pytest.CaptureFixture[str]) -> None:
    """main sets 0077 for what the gateway writes; a Python caller (a test, a script) keeps its own."""
    before = os.umask(0o022)
    try:
        with pytest.raises(SystemExit):
            main(["--help"])
        assert main(["replay"]) == 2
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    capsys.readouterr()


def test_one_role_alone_on_sqlite_is_one_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "gateway", "serve", "--role", "process"], capture_output=True,
                            text=True, env={**os.environ, "GATEWAY_CONFIG": str(write_home(tmp_path))}, timeout=60)
    assert result.returncode == 1
    assert "gateway serve --role process runs beside other hosts on one PostgreSQL database" in result.stderr


@pytest.mark.parametrize("details, error", [
    ("IBAN FR76 3000 6000 0112 3456 7890 189, BIC AGRIFRPP888", None),
    ("Banque Exemple\nIBAN: DE89370400440532013000 (BIC COBADEFFXXX)", None),
    ("IBAN FR76 3000 6000 0112 3456 7890 188", "'FR76 3000 6000 0112 3456 7890 188' is not a valid IBAN"),
    ("IBAN DE89 3704 0044 0532 0130", "'DE89 3704 0044 0532 0130' is not a valid IBAN")])
def test_an_iban_in_the_bank_details_is_checked_before_customers_copy_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, details: str,
        error: str | None) -> None:
    config = write_home(tmp_path, sections=f"[payments]\nbank_details = {json.dumps(details)}\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(config))
    assert main(["check"]) == (1 if error else 0)
    if error:
        assert f"[payments] bank_details: {error}" in capsys.readouterr().err


@pytest.mark.parametrize("line, says", [("attachment_link_days = 0", "attachment_link_days is 0; use a number from 1"),
                                        ("attachments_max_mb = -1", "attachments_max_mb is -1; use a number from 0")])
def test_attachment_settings_out_of_range_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch, line: str, says: str) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(write_home(tmp_path, extra=line)))
    assert main(["check"]) == 1
    assert says in capsys.readouterr().err


def test_config_and_data_may_come_before_or_after_the_action(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    assert main(["people", "add", "ann@shop.example", "--role", "coordinator", "--config", str(config),
                 "--data", str(elsewhere)]) == 0
    assert (elsewhere / "gateway.db").is_file() and not (tmp_path / "var").exists()
    capsys.readouterr()
    assert main(["requests", "--config", str(config), "--data", str(elsewhere), "list", "--json"]) == 0
    assert main(["requests", "list", "--json", "--config", str(config), "--data", str(elsewhere)]) == 0
    assert capsys.readouterr().out == "[]\n[]\n"
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file"] == str(config)
