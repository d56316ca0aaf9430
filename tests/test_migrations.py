"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, text

import gateway.orders.models  # noqa: F401  (the order tables join the metadata)
from gateway.db import MIGRATIONS, NEWEST_REVISION, SEARCH_INDEX, make_engine, migrate
from gateway.models import Base
from gateway.settings import Settings


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    sqlite = f"sqlite:///{tmp_path / 'schema.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = create_engine(url)
    yield made
    made.dispose()


def test_the_migrated_schema_is_the_models_schema(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, _kind, _parent: not (name or "").startswith(SEARCH_INDEX)})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def _migrate_when_all_are_ready(url: str, ready: Barrier) -> None:
    engine = create_engine(url)
    ready.wait()
    migrate(engine)
    engine.dispose()


@pytest.mark.postgres
def test_hosts_starting_together_on_a_new_database_all_start(postgres_url: str) -> None:
    """Every container of the compose file migrates at its start, at the same moment on a new database:
    one migrates, the others wait and find the schema current; none fails."""
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Barrier(4)
    hosts = [spawn.Process(target=_migrate_when_all_are_ready, args=(postgres_url, ready)) for _ in range(4)]
    for host in hosts:
        host.start()
    for host in hosts:
        host.join(120)
    assert [host.exitcode for host in hosts] == [0, 0, 0, 0]
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()


def test_the_newest_revision_named_in_db_is_alembics_head() -> None:
    """``migrate`` skips Alembic on a database at ``NEWEST_REVISION``: a migration added without moving
    it would never run."""
    assert ScriptDirectory(str(MIGRATIONS)).get_current_head() == NEWEST_REVISION


def test_a_current_database_starts_without_alembic(tmp_path: Path) -> None:
    """Alembic is 11 MB of every long-running process; on a current database it is not loaded."""
    url = f"sqlite:///{tmp_path / 'current.db'}"
    migrate(create_engine(url))
    code = ("import sys; from sqlalchemy import create_engine; from gateway.db import migrate; "
            f"migrate(create_engine({url!r})); print(sorted(m for m in sys.modules if m.startswith('alembic')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_mail_queued_before_the_outbox_bodies_keeps_its_bytes_through_the_upgrade_and_back(
        engine: Engine, tmp_path: Path) -> None:
    """0008 moved a mail's bytes out of its outbox row: a mail written by an older version, pending
    when the site upgrades, is read whole after the upgrade, and back after a downgrade. On SQLite with
    the gateway's own connection settings (foreign keys on)."""
    if engine.dialect.name == "sqlite":
        engine = make_engine(Settings(home=tmp_path, data_dir=tmp_path))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0007")
        connection.execute(text(
            "INSERT INTO outbox (sender, recipient, template, topic, message_id, raw, status, attempts, last_error, "
            "created_at) VALUES ('support@shop.example', 'c@client.example', 't', '', '<m@x>', :raw, 'pending', 0, '', "
            "CURRENT_TIMESTAMP)"), {"raw": b"Subject: queued\r\n\r\nbefore the upgrade\r\n"})
        command.upgrade(config, "0008")
        assert connection.execute(text(
            "SELECT b.raw FROM outbox o JOIN outbox_bodies b ON b.outbox_id = o.id")).scalar_one() == \
            b"Subject: queued\r\n\r\nbefore the upgrade\r\n"
        command.downgrade(config, "0007")
        assert connection.execute(text("SELECT raw FROM outbox")).scalar_one() == \
            b"Subject: queued\r\n\r\nbefore the upgrade\r\n"
