"""The configuration is checked strictly: a typo is an error naming the file and line, with the key meant.

Every command reads the configuration at its start, so each of these would have stopped ``gateway
serve`` as it stops ``gateway check`` here (CONTRACT §2: an unknown section or key is an error).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_home

from gateway.cli.main import main


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    return capsys.readouterr().err


@pytest.mark.parametrize("extra, sections, says", [
    ('local = "fr"', "", "gateway.toml:10: `local`: unknown key in [gateway]; did you mean `locale`?"),
    ("", "[smtp]\nprot = 2600", ":23: `prot`: unknown key in [smtp]; did you mean `port`?"),
    ("", '[smtp]\ntrusted_autserv_id = "mx.shop.example"',
     "`trusted_autserv_id`: unknown key in [smtp]; did you mean `trusted_authserv_id`?"),
    ("", "[relais]\nhost = \"127.0.0.1\"", ":22: `relais`: unknown section; did you mean `relay`?"),
    ("", "[payments]\nprovider = \"strip\"", "[payments] provider is 'strip'; use one of manual, fake-card, stripe; "
                                             "did you mean `stripe`?"),
    ("", "[smtp]\nport = \"2525\"", "[smtp] port is '2525'; use a whole number"),
    ("", "[smtp]\nport = 70000", "[smtp] port is 70000; use a number from 1 to 65535"),
    ('locale = "de"', "", "[gateway] locale is 'de'; use one of fr, en"),
    ("check_dkim = true", "", "`check_dkim`: unknown key in [gateway]"),  # it belongs to [smtp]
], ids=["local", "prot", "authserv-id", "section", "choice", "type", "range", "locale", "wrong-section"])
def test_a_mistake_in_gateway_toml_is_refused_with_its_line_and_the_key_meant(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, sections: str, says: str) -> None:
    config = write_home(tmp_path, extra=extra, sections=sections)
    assert says in _refused(capsys, ["check", "--config", str(config)])


def test_a_misspelled_mailbox_key_is_refused_in_the_mailbox_file_that_has_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path)
    (tmp_path / "mailboxes").mkdir()
    (tmp_path / "mailboxes" / "sales.toml").write_text(
        'address = "sales@shop.example"\nkind = "helpdesk"\ninclude_suplier = true\n')
    err = _refused(capsys, ["check", "--config", str(config)])
    assert f"{tmp_path / 'mailboxes' / 'sales.toml'}:3: `include_suplier`: unknown key in the mailbox; " \
           "did you mean `include_supplier`?" in err


def test_a_misspelled_deadline_of_an_orders_mailbox_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """It would have silently left the orders with no acceptance deadline."""
    config = write_home(tmp_path, orders_mailbox="acceptance_hour = 48")
    assert "`acceptance_hour`: unknown key in [[mailboxes]]; did you mean `acceptance_hours`?" in _refused(
        capsys, ["check", "--config", str(config)])


def test_every_mistake_of_a_file_is_told_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path, extra='local = "fr"', sections="[smtp]\nprot = 2600\nidle_seconds = 0")
    err = _refused(capsys, ["check", "--config", str(config)])
    assert "`local`" in err and "`prot`" in err and "[smtp] idle_seconds is 0; use a number from 1" in err


def test_every_command_refuses_a_mistaken_configuration_at_its_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path, extra='local = "fr"')
    for argv in (["requests", "--config", str(config), "list"], ["sweep", "--config", str(config)],
                 ["people", "--config", str(config), "add", "a@shop.example", "--role", "coordinator"]):
        assert "did you mean `locale`?" in _refused(capsys, argv)
    assert not (tmp_path / "var").exists(), "nothing was started or written"


def test_the_repository_home_and_its_example_files_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "a-secret-of-at-least-thirty-two-characters")
    root = Path(__file__).resolve().parents[1]
    assert main(["check", "--config", str(root / "gateway.toml")]) == 0
