"""The process-wide handles every command and actor shares: settings, engine, sessions.

Actors receive ids, not objects, so they need one place to find the database;
``open_context`` is called once by the command that starts the process.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import use_offset_file
from gateway.db import make_engine, migrate, session_factory
from gateway.settings import ConfigError, Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]


_current: Context | None = None


def open_context(settings: Settings, *, migrated: bool = False) -> Context:
    """Connect, migrate the schema to the newest revision, and make this the process's context.

    ``migrated``: the process that started this one migrates, before it asks this one for anything.
    """
    global _current
    use_offset_file(settings.clock_file)
    engine = make_engine(settings)
    if not migrated:
        try:
            migrate(engine)
        except OperationalError as error:  # the server down, a wrong host or password: said in one line
            raise ConfigError(f"the database cannot be reached: {' '.join(str(error.orig).split())}") from None
    _current = Context(settings=settings, engine=engine, sessions=session_factory(engine))
    return _current


def current() -> Context:
    if _current is None:
        raise RuntimeError("no gateway context: call open_context(settings) at start")
    return _current
