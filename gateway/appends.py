"""Rows that processing only appends, inserted together as plain inserts by ``write_appended``, which
the pipeline calls just before it commits (a commit with rows not written is refused).

A rule match and the Message-ID of a mail received are written once and never changed,
so the ORM's unit of work, which costs about as much for each as for a comment, buys them
nothing. They are kept here as plain values instead, their
request's id filled in when they are inserted: by ``write_appended``, or before a query of
their table, which sees them as autoflush would have let it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, insert
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from gateway.models import Base, Request

_KEY = "gateway.appends"

Appended = dict[type[Base], list[tuple[Request, dict[str, Any]]]]


def append(session: Session, model: type[Base], request: Request, **values: Any) -> None:
    """A row of ``model`` about ``request``, inserted before the transaction commits."""
    session.info.setdefault(_KEY, {}).setdefault(model, []).append((request, values))


class UnwrittenRows(RuntimeError):
    """A transaction committed with appended rows not written: a mistake of the code that commits."""


def write_appended(session: Session) -> None:
    """Insert the rows appended since the last time."""
    appended: Appended = session.info.pop(_KEY, {})
    if not appended:
        return
    session.flush()  # their requests have ids
    connection = session.connection()
    for model, rows in appended.items():
        connection.execute(insert(model), [{**values, "request_id": request.id} for request, values in rows])


@event.listens_for(Session, "before_commit")
def _refuse_unwritten(session: Session) -> None:
    if session.info.get(_KEY) and not session.in_nested_transaction():  # a savepoint's release is no commit
        raise UnwrittenRows("rows appended and not written: call appends.write_appended before the commit")


@event.listens_for(Session, "do_orm_execute")
def _before_query(state: ORMExecuteState) -> None:
    appended: Appended | None = state.session.info.get(_KEY)
    if (appended and state.session.autoflush and state.is_select
            and any(model.__mapper__ in state.all_mappers for model in appended)):
        write_appended(state.session)


@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, _transaction: SessionTransaction) -> None:
    session.info.pop(_KEY, None)
