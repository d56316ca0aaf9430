"""The engine and sessions: SQLite (WAL) by default, PostgreSQL through psycopg 3 in production."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from gateway.settings import ConfigError, Settings

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision: a database there needs no Alembic (``migrate``). A test checks it
# against Alembic's head, so that a new migration cannot be forgotten here.
NEWEST_REVISION = "0009"


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode survives a crash of the process (kill -9); only a power cut can lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(settings: Settings) -> Engine:
    """An engine for the configured database; the SQLite file's folder is created if needed."""
    url = settings.db_url
    if url.startswith("sqlite"):
        try:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"data_dir {settings.data_dir} cannot be made: {error.strerror or error}") from error
        if not os.access(settings.data_dir, os.W_OK | os.X_OK):  # SQLite writes beside the file, even to read
            raise ConfigError(f"data_dir {settings.data_dir} is not writable: the gateway keeps its database, "
                              "the mail it receives and the mail it sends there")
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10)
    except ImportError as error:  # a database whose driver the gateway does not install
        raise ConfigError(f"database_url names a database the gateway cannot use ({error}): give a "
                          "postgresql:// URL, or leave it empty for SQLite") from None
    except (ArgumentError, ValueError) as error:  # not a URL (said without it: it may hold a password)
        raise ConfigError(f"database_url is not a database URL ({type(error).__name__}: {error}); the "
                          "form is postgresql://USER:PASSWORD@HOST:PORT/DATABASE") from None


# Kept by migration 0006, not described by the models: the full-text index of the comments
# (``gateway requests list --search``): an FTS5 table and its shadow tables on SQLite, a GIN index on
# PostgreSQL. Schema comparisons leave these names out.
SEARCH_INDEX = ("comments_search", "ix_comments_search")
# The key of the PostgreSQL advisory lock that lets one process at a time migrate (any fixed number).
_MIGRATION_LOCK = 0x6761746577617901


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (run at every start; a no-op when current).

    Every host of a deployment starts this at once on a new database (CONTRACT §11): on PostgreSQL
    they take turns behind a transaction's advisory lock, so the first migrates and the others find
    the schema current, where two would both create ``alembic_version`` and one would fail. (On
    SQLite one host serves a database, and its processor reads it only for a batch it is sent, once
    the host has migrated: ``gateway import`` starts its processor before it migrates.)

    Alembic is imported here, and only when the schema is not current: it is 11 MB of memory, which a
    process that starts on a current database (every start but the first after an upgrade) does without.
    """
    if _revision(engine) == NEWEST_REVISION:
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _revision(engine: Engine) -> str | None:
    """The schema's revision as Alembic wrote it; None on a new database."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
