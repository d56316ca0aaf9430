"""Which stored messages a processor may apply now: per conversation in the order received, and
different conversations in parallel, in as many threads, processes and hosts as there are.

Every message has a conversation key from its admission (``intake.conversation``). A processor
claims whole conversations: the pending messages of each, oldest first, go in one batch, which
``process_batch`` applies in that order, and they stay pending until its transaction commits. No
one else takes a conversation while it is held:

- within a process, its threads share the set of conversations held (``Claims``);
- across processes, on PostgreSQL, a session advisory lock per conversation, taken on a connection
  of the process's own. The lock goes with the connection, so a processor killed mid-batch leaves
  nothing locked, and its messages, still pending, are claimed again at the next poll.

Several SMTP hosts admit what they received each on its own, in batches: one may admit a message
after another admitted a later one of the same conversation. So each host writes a watermark
(``intake_nodes``, ``intake.admission.mark_admitted``), the time before which everything it
acknowledged is admitted, and on PostgreSQL a message is claimed only once it was received before
the lowest watermark of the hosts heard from lately. SQLite runs in one ``gateway serve``, whose
one admitter numbers the messages in the order they were received: it needs no watermark.

Why not a job queue with per-key locks (procrastinate's ``lock``): the messages already are rows
with a status, written in the admitting transaction; a second queue would be a second copy of the
same state to keep in step, and its jobs would still have to be ordered by the time received.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from gateway.context import Context
from gateway.models import Inbound, IntakeNode, database_now

# A host not heard from for this long is taken for gone: its watermark no longer holds anyone back.
# It writes one at least every ``intake.listener.HEARTBEAT_SECONDS``, also while its admissions fail;
# a host that stops cleanly removes its row. A host killed and restarted within this time keeps the
# order of what it had acknowledged; one gone for longer no longer holds everyone's mail back.
NODE_SILENT_SECONDS = 120.0
LOOK_AHEAD = 10  # pending messages read per message wanted: the first ones may be held by others
LOOKS = 3  # reads of what waits, each leaving out the conversations found held: past a backlog held elsewhere


class Claims:
    """The conversations this process holds, and on PostgreSQL the connection holding their locks."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.distributed = context.engine.dialect.name == "postgresql"
        self._held: dict[str, list[int]] = {}  # conversation: the messages taken of it
        self._turn = threading.Lock()  # one claim or release at a time: the lock connection is not shared
        self._locks: Connection | None = None

    def take(self, limit: int) -> list[int]:
        """Up to ``limit`` messages to apply in this order, whose conversations are now held; [] when
        none may be applied now."""
        with self._turn:
            taken: dict[str, list[int]] = {}  # locked as they are found: whatever stops the claim, they go
            try:
                self._take(limit, taken)
            except BaseException:
                for conversation in taken:
                    self._unlock(conversation)
                raise
            self._held.update(taken)
            return [inbound_id for ids in taken.values() for inbound_id in ids]

    def _take(self, limit: int, taken: dict[str, list[int]]) -> None:
        refused: set[str] = set()  # held here or elsewhere: none of its messages may go before its first
        count = 0
        for _look in range(LOOKS):
            pending = self._pending(limit * LOOK_AHEAD, leaving_out={*refused, *self._held})
            for inbound_id, conversation in pending:
                if count == limit:
                    break
                if conversation in taken:
                    taken[conversation].append(inbound_id)
                elif conversation not in refused and conversation not in self._held and self._lock(conversation):
                    taken[conversation] = [inbound_id]
                else:
                    refused.add(conversation)
                    continue
                count += 1
            if count or len(pending) < limit * LOOK_AHEAD:
                break  # something taken, or nothing more waiting: a backlog held elsewhere hides nothing
        self._still_pending(taken)

    def release(self, inbound_ids: list[int]) -> None:
        """Once the messages are applied and committed (or given up): their conversations may go on."""
        given = set(inbound_ids)
        with self._turn:
            for conversation in [c for c, ids in self._held.items() if given.intersection(ids)]:
                del self._held[conversation]
                self._unlock(conversation)

    def _forget_locks(self) -> None:
        """The lock connection broke: the server let go of its locks (those of the batches being applied
        too: the unique index on ``applied_messages`` still applies a message once). A new connection is
        opened when next needed."""
        if self._locks is not None:
            self._locks.invalidate()
            self._locks.close()
            self._locks = None

    def close(self) -> None:
        """Let go of every conversation, and of the lock connection (back to the pool, unlocked)."""
        with self._turn:
            if self._locks is not None:
                self._locks.execute(text("SELECT pg_advisory_unlock_all()"))
                self._locks.close()
                self._locks = None
            self._held.clear()

    def _pending(self, limit: int, leaving_out: set[str]) -> list[tuple[int, str]]:
        query = select(Inbound.id, Inbound.conversation).where(Inbound.status == "pending")
        if leaving_out:
            query = query.where(Inbound.conversation.not_in(leaving_out))
        with self.context.sessions() as session:
            if self.distributed:
                watermark = _watermark(session.scalar(
                    select(func.min(IntakeNode.watermark))
                    .where(IntakeNode.seen_at >= database_now() - timedelta(seconds=NODE_SILENT_SECONDS))))
                query = query.where(Inbound.received_at <= watermark)
            return [(inbound_id, conversation) for inbound_id, conversation in session.execute(
                query.order_by(Inbound.received_at, Inbound.id).limit(limit))]

    def _still_pending(self, taken: dict[str, list[int]]) -> None:
        """Another process may have applied some between the read and the lock: they are left out,
        and a conversation left with nothing is let go."""
        if not self.distributed or not taken:
            return
        with self.context.sessions() as session:
            pending = set(session.scalars(select(Inbound.id).where(
                Inbound.id.in_([i for ids in taken.values() for i in ids]), Inbound.status == "pending")))
        for conversation, ids in list(taken.items()):
            if ids[0] in pending:
                taken[conversation] = [i for i in ids if i in pending]
            else:  # its first was applied meanwhile: what follows it is claimed afresh next time
                del taken[conversation]
                self._unlock(conversation)

    def _lock(self, conversation: str) -> bool:
        if not self.distributed:
            return True
        try:
            if self._locks is None:
                self._locks = self.context.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return bool(self._locks.scalar(text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))"),
                                           {"key": conversation}))
        except SQLAlchemyError:
            self._forget_locks()
            raise

    def _unlock(self, conversation: str) -> None:
        if not self.distributed or self._locks is None:
            return
        try:
            self._locks.execute(text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))"), {"key": conversation})
        except SQLAlchemyError:  # the lock connection broke: the server let go of its locks already
            self._forget_locks()


def _watermark(lowest: datetime | None) -> datetime:
    """No host heard from lately: none can hold a message back."""
    return lowest if lowest is not None else datetime.max
