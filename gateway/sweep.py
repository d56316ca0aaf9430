"""The deadline sweep: what is due is done, once, whenever the sweep runs.

Each step is idempotent (an expired quote is no longer open), so a sweep that runs
twice, or again after a restart, changes nothing more.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from gateway import revoked
from gateway.context import Context
from gateway.models import Participant
from gateway.orders.quotes import expire_quotes
from gateway.outbound.notify import Mailer

log = logging.getLogger("gateway.sweep")


def publish_revoked(context: Context) -> None:
    """The participants removed from their requests, for the SMTP listeners to refuse (``revoked``)."""
    with context.sessions() as session:
        ids = session.scalars(select(Participant.id).where(Participant.active.is_(False))).all()
    if revoked.publish(context.settings.data_dir, ids) and ids:
        log.info("reply addresses no longer taken (their participants were removed): %s", len(ids))


def sweep(context: Context) -> list[int]:
    """Run every due deadline; returns the outbox ids to send after the commit."""
    with context.sessions.begin() as session:
        mailer = Mailer(session, context.settings)
        expired = expire_quotes(session, context.settings, mailer)
    if expired:
        log.info("quotes expired: %s", ", ".join(str(q) for q in expired))
    return mailer.outbox_ids


class Sweeper:
    """Runs ``sweep`` every ``[gateway] sweep_seconds`` in a daemon thread until stopped."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.interval = context.settings.sweep_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        from gateway.tasks import send_mail

        while not self._stop.is_set():
            try:
                publish_revoked(self.context)
                outbox_ids = sweep(self.context)
                if outbox_ids:
                    send_mail.send(outbox_ids)
            except Exception:  # the next sweep tries again; a deadline is never lost, only late
                log.exception("deadline sweep failed")
            self._stop.wait(self.interval)
