"""The configuration is checked strictly: a typo is an error naming the file and line, with the key meant.

Every command reads the configuration at its start, so each of these would have stopped ``gateway
serve`` as it stops ``gateway check`` here (CONTRACT §2: an unknown section or key is an error).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from conftest import free_port, write_home

from gateway.cli.check import _links
from gateway.cli.main import main
from gateway.db import make_engine, migrate
from gateway.settings import check_secret, load


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


@pytest.mark.parametrize("url, says", [
    ("mysql://u:s3cret-pw@db.example/shop", "database_url names a database the gateway cannot use"),
    ("nonsense", "database_url is not a database URL"),
    ("postgresql+psycopg://u:s3cret-pw@[::1/x", "database_url is not a database URL"),
    ("postgresql://u:s3cret-pw@127.0.0.1:{port}/x", "the database cannot be reached: connection failed"),
], ids=["a driver not installed", "not a URL", "a broken host", "no server there"])
def test_a_database_url_that_cannot_be_used_is_said_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str,
        says: str) -> None:
    """Malformed, a driver the gateway does not install, a server not there: one line that says which, never
    a traceback, never the password."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url.format(port=free_port()))
    err = _refused(capsys, ["requests", "--config", str(write_home(tmp_path)), "list"])
    assert err.startswith("gateway: " + says) and err.count("\n") == 1, err
    assert "s3cret-pw" not in err


def test_the_repository_home_and_its_example_files_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SECRET_KEY", "a-secret-of-at-least-thirty-two-characters")
    root = Path(__file__).resolve().parents[1]
    assert main(["check", "--config", str(root / "gateway.toml")]) == 0


# --- the reference, generated ---------------------------------------------------------------------------

REPOSITORY = Path(__file__).resolve().parents[1]


def test_docs_configuration_md_is_the_generated_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "reference"]) == 0
    assert capsys.readouterr().out == (REPOSITORY / "docs" / "configuration.md").read_text(encoding="utf-8"), \
        "the declarations changed: gateway config reference > docs/configuration.md"


def test_the_reference_names_every_key_a_site_may_write() -> None:
    text = (REPOSITORY / "docs" / "configuration.md").read_text(encoding="utf-8")
    for needle in ("## [smtp]", "`trusted_authserv_id`", "## [[mailboxes]]", "`acceptance_hours`",
                   "## [mailboxes.imap]", "`password_env`", "`GATEWAY_SECRET_KEY`", "`fr`, `en`"):
        assert needle in text


# --- config show ----------------------------------------------------------------------------------------

SECRETS = ("s3cret-signing-key-0123456789abcdef", "relay-pa55word", "whsec_t0ps3cret", "imap-pa55word",
           "db-pa55word", "sk_test_env_s3cret")


def test_config_show_says_where_each_value_comes_from_and_never_prints_a_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(f"""[gateway]
domain = "shop.example"
secret_key = "{SECRETS[0]}"
site_name = "Boutique"

[relay]
host = "relay.shop.example"
user = "gateway"
password = "{SECRETS[1]}"

[payments]
stripe_webhook_secret = "{SECRETS[2]}"

[[mailboxes]]
address = "orders@shop.example"
kind = "orders"
imap = {{ host = "imap.shop.example", user = "orders", password = "{SECRETS[3]}" }}
""")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"postgresql+psycopg://gateway:{SECRETS[4]}@db.internal:5432/gw")
    monkeypatch.setenv("GATEWAY_STRIPE_API_KEY", SECRETS[5])
    assert main(["config", "--config", str(config), "show"]) == 0
    text = capsys.readouterr().out
    assert main(["config", "show", "--config", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    for secret in SECRETS:
        assert secret not in text and secret not in json.dumps(shown)
    gateway = shown["sections"]["gateway"]
    assert gateway["site_name"] == {"value": "Boutique", "source": str(config)}
    assert gateway["locale"] == {"value": "fr", "source": "default"}
    assert gateway["database_url"] == {"value": "postgresql+psycopg://gateway:***@db.internal:5432/gw",
                                       "source": "GATEWAY_DATABASE_URL"}
    assert gateway["secret_key"]["value"] == "***"
    assert shown["sections"]["payments"]["stripe_api_key"]["source"] == "GATEWAY_STRIPE_API_KEY"
    assert shown["mailboxes"][0]["imap"]["value"]["password"] == "***"
    assert f'site_name = "Boutique"  # {config}' in text and 'locale = "fr"  # default' in text


# --- gateway init -----------------------------------------------------------------------------------------


def test_init_makes_a_home_that_passes_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "maboutique"
    assert main(["init", str(home), "--domain", "maboutique.example", "--site-name", "Ma Boutique",
                 "--locale", "en"]) == 0
    config = home / "gateway.toml"
    assert config.stat().st_mode & 0o777 == 0o600
    for made in ("mailboxes/support.toml", "mailboxes/orders.toml", "rules/README.md", "templates/README.md",
                 "NEXT-STEPS.md"):
        assert (home / made).is_file(), made
    settings = load(str(config))
    assert (settings.domain, settings.site_name, settings.locale) == ("maboutique.example", "Ma Boutique", "en")
    assert [m.address for m in settings.mailboxes] == ["orders@maboutique.example", "support@maboutique.example"]
    check_secret(settings.secret_key)
    assert main(["init", str(tmp_path / "other"), "--domain", "maboutique.example"]) == 0
    assert load(str(tmp_path / "other" / "gateway.toml")).secret_key != settings.secret_key, "a fresh key each"
    capsys.readouterr()
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "ok   data:" in out and "not created yet" in out
    assert "ok   links: mails link to http://127.0.0.1:8000: only this machine opens it; set base_url" in out
    assert "`base_url`" in (home / "NEXT-STEPS.md").read_text(), "the next steps say where the links point"


def test_init_never_overwrites_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    (home / "mailboxes").mkdir(parents=True)
    (home / "mailboxes" / "support.toml").write_text('address = "help@mine.example"\n')
    assert _refused(capsys, ["init", str(home), "--domain", "mine.example"]).count("already exist") == 1
    assert sorted(p.name for p in home.rglob("*")) == ["mailboxes", "support.toml"], "nothing was written"
    assert (home / "mailboxes" / "support.toml").read_text() == 'address = "help@mine.example"\n'
    (home / "mailboxes" / "support.toml").unlink()
    assert main(["init", str(home), "--domain", "mine.example"]) == 0
    before = (home / "gateway.toml").read_text()
    assert "gateway init never overwrites" in _refused(capsys, ["init", str(home), "--domain", "mine.example"])
    assert (home / "gateway.toml").read_text() == before


# --- gateway check: what the home needs around it ----------------------------------------------------------


def _findings(capsys: pytest.CaptureFixture[str], argv: list[str], status: int) -> dict[str, dict[str, Any]]:
    assert main([*argv, "--json"]) == status
    return {finding["check"]: finding for finding in json.loads(capsys.readouterr().out)}


def test_check_finds_the_database_at_the_newest_migration_once_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path)
    migrate(make_engine(load(str(config))))
    database = _findings(capsys, ["check", "--config", str(config)], 0)["database"]
    assert database["ok"] and "reachable, at the newest migration" in database["detail"]


@pytest.mark.postgres
def test_check_fails_on_an_unreachable_database_and_broker(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], postgres_url: str) -> None:
    config = write_home(tmp_path, database_url=postgres_url, broker_url="redis://127.0.0.1:6379/0")
    found = _findings(capsys, ["check", "--config", str(config)], 0)
    assert found["database"]["ok"] and "at migration none; gateway serve brings it to" in found["database"]["detail"]
    assert found["broker"] == {"check": "broker", "ok": True, "detail": "redis://127.0.0.1:6379/0: reachable"}
    closed = free_port()
    config = write_home(tmp_path, database_url=f"postgresql+psycopg://postgres@127.0.0.1:{closed}/test",
                        broker_url=f"redis://127.0.0.1:{closed}/0")
    found = _findings(capsys, ["check", "--config", str(config)], 1)
    assert not found["database"]["ok"] and "unreachable" in found["database"]["detail"]
    assert not found["broker"]["ok"] and "unreachable" in found["broker"]["detail"]


def test_check_fails_when_the_data_folder_cannot_be_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    config = write_home(tmp_path)
    config.write_text(config.read_text().replace('data_dir = "var"', 'data_dir = "a-file/var"'))
    data = _findings(capsys, ["check", "--config", str(config)], 1)["data"]
    assert not data["ok"] and "not writable" in data["detail"]


class _Recorder:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        return "250 OK"


def test_check_says_whether_the_relay_offers_starttls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    relay = Controller(_Recorder(), hostname="127.0.0.1", port=port)
    relay.start()
    try:
        config = write_home(tmp_path, sections=f'[relay]\nhost = "127.0.0.1"\nport = {port}\n')
        found = _findings(capsys, ["check", "--config", str(config), "--relay"], 0)
        assert found["relay"] == {"check": "relay", "ok": True,
                                  "detail": f"127.0.0.1:{port}: EHLO answered, no STARTTLS offered"}
        config = write_home(tmp_path, sections=f'[relay]\nhost = "127.0.0.1"\nport = {port}\nstarttls = true\n')
        relay_finding = _findings(capsys, ["check", "--config", str(config), "--relay"], 1)["relay"]
        assert not relay_finding["ok"] and "but [relay] starttls = true" in relay_finding["detail"]
    finally:
        relay.stop()
    config = write_home(tmp_path, sections=f'[relay]\nhost = "127.0.0.1"\nport = {port}\n')
    assert "no answer to EHLO" in _findings(capsys, ["check", "--config", str(config), "--relay"], 1)["relay"]["detail"]
    assert main(["check", "--config", str(config), "--relay"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ok   config:") and lines[-1].startswith("FAIL relay:"), "one finding a line"


def test_a_misspelled_key_of_a_mailboxs_imap_table_is_refused_with_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path, orders_mailbox='imap = { host = "imap.shop.example", prot = 993 }')
    assert "gateway.toml:20: `prot`: unknown key in [[mailboxes]] imap; did you mean `port`?" in _refused(
        capsys, ["check", "--config", str(config)])


# --- found by a review --------------------------------------------------------------------------------------


@pytest.mark.parametrize("url, shown", [
    ("postgresql+psycopg://gateway@db/gw?password=pw-in-query", "postgresql+psycopg://gateway@db/gw?password=***"),
    ("postgresql+psycopg:///gw?host=/run/pg&password=pw-in-query&sslmode=require",
     "postgresql+psycopg:///gw?host=/run/pg&password=***&sslmode=require"),
    ("redis://:pw-in-query@redis.internal:6379/0", "redis://:***@redis.internal:6379/0"),
])
def test_no_form_of_a_password_in_a_url_is_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str,
        shown: str) -> None:
    config = write_home(tmp_path)
    monkeypatch.setenv("GATEWAY_BROKER_URL", url)
    assert main(["config", "--config", str(config), "show", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sections"]["gateway"]["broker_url"]["value"] == shown
    main(["check", "--config", str(config)])
    assert "pw-in-query" not in capsys.readouterr().out


def test_a_secret_of_the_wrong_type_is_not_repeated_in_the_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path, sections="[relay]\nhost = \"127.0.0.1\"\npassword = 31415926535")
    err = _refused(capsys, ["check", "--config", str(config)])
    assert "[relay] password is (hidden: a secret); use a string in quotes" in err and "31415926535" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_number_that_is_not_finite_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                value: str) -> None:
    config = write_home(tmp_path, extra=f"sweep_seconds = {value}")
    assert "use a finite number" in _refused(capsys, ["check", "--config", str(config)])


def test_a_mistake_in_the_second_mailbox_is_named_at_its_own_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path, orders_mailbox='cc_become_observers = "yes"')
    assert "gateway.toml:20: [[mailboxes]] cc_become_observers is 'yes'; use true or false" in _refused(
        capsys, ["check", "--config", str(config)])


def test_without_a_relay_config_show_says_mail_goes_to_the_outbox(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path)
    assert main(["config", "--config", str(config), "show"]) == 0
    assert "# no [relay]: outgoing mail is written to the outbox Maildir" in capsys.readouterr().out


def test_check_fails_on_a_database_a_newer_gateway_migrated(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_home(tmp_path)
    engine = make_engine(load(str(config)))
    migrate(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'from_the_future'")
    engine.dispose()
    database = _findings(capsys, ["check", "--config", str(config)], 1)["database"]
    assert not database["ok"] and "which this version does not know" in database["detail"]


def test_check_never_creates_a_sqlite_file_of_another_name(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_home(tmp_path)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite:///{tmp_path / 'shop.sqlite'}")
    assert "not created yet" in _findings(capsys, ["check", "--config", str(config)], 0)["database"]["detail"]
    assert not (tmp_path / "shop.sqlite").exists()


@pytest.mark.parametrize("domain", ['shop".example', "shop\\.example", "shop", "-shop.example", "shop..example"])
def test_init_refuses_a_domain_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               domain: str) -> None:
    assert "give the mail domain" in _refused(capsys, ["init", str(tmp_path / "home"), f"--domain={domain}"])
    assert not (tmp_path / "home").exists()


def test_init_counts_a_dangling_link_as_a_file_it_will_not_overwrite(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "home" / "mailboxes").mkdir(parents=True)
    (tmp_path / "home" / "mailboxes" / "orders.toml").symlink_to(tmp_path / "nowhere.toml")
    assert "already exist" in _refused(capsys, ["init", str(tmp_path / "home"), "--domain", "shop.example"])
    assert not (tmp_path / "home" / "gateway.toml").exists() and not (tmp_path / "nowhere.toml").exists()


def test_init_stops_before_writing_anything_when_a_folder_it_makes_is_in_the_way(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file where templates/ goes, or a home that is a dangling link: one line, nothing half made."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "templates").write_text("a file")
    said = _refused(capsys, ["init", str(tmp_path / "home"), "--domain", "shop.example"])
    assert said == f"gateway: {tmp_path / 'home' / 'templates'} is in the way: gateway init makes a folder there, " \
                   "and never overwrites\n"
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["templates"], "nothing was written"
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")
    assert "is in the way" in _refused(capsys, ["init", str(tmp_path / "link"), "--domain", "shop.example"])
    assert not (tmp_path / "nowhere").exists()


def test_check_says_a_base_url_no_mail_client_opens_is_wrong_rather_than_failing_itself() -> None:
    assert not _links("http://[::1").ok, "a finding, not a traceback"
    assert _links("https://shop.example").line() == "ok   links: mails link to https://shop.example"
