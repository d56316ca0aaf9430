"""The processor: ``gateway serve`` applies messages in a child process, replaced if it dies."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import alive, children
from sqlalchemy import func, select

from gateway.children import Child
from gateway.context import Context, open_context
from gateway.helpdesk import upsert_person
from gateway.intake.admission import store
from gateway.models import Inbound, Outbox
from gateway.service.processor import Processor, processor_main
from gateway.settings import Mailbox, Settings


@pytest.fixture
def context(tmp_path: Path) -> Context:
    context = open_context(Settings(home=tmp_path, data_dir=tmp_path / "var",
                                    mailboxes=(Mailbox("support@shop.example"),)))
    with context.sessions.begin() as session:
        upsert_person(session, "camille@shop.example", role="coordinator")
    return context


def _stored(context: Context, number: int) -> int:
    raw = (f"From: c{number}@client.example\r\nTo: support@shop.example\r\nSubject: question {number}\r\n"
           f"Message-ID: <proc{number}@c>\r\n\r\nBonjour\r\n").encode()
    return store(context, raw, source="smtp", mailbox="support@shop.example")


def _processors() -> list[int]:
    """This process's children that apply messages (not the resource tracker that other tests' use of
    multiprocessing may have started)."""
    return [pid for pid in children(os.getpid()) if b"gateway.children" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _processor(context: Context) -> Processor:
    """A processor as ``gateway serve`` starts it: yielding to the listeners."""
    return Processor(Child(processor_main, context.settings, True))


def test_the_processor_applies_messages_elsewhere_and_is_replaced_when_it_dies(context: Context) -> None:
    processor = _processor(context)
    try:
        outbox_ids = processor.apply([_stored(context, 1)])
        [first] = _processors()
        assert first != os.getpid()
        assert os.sched_getscheduler(first) == os.SCHED_IDLE, "it runs on what the listeners leave"
        with context.sessions() as session:
            assert {row.recipient for row in session.scalars(select(Outbox).where(Outbox.id.in_(outbox_ids)))} \
                == {"camille@shop.example", "c1@client.example"}
        os.kill(first, signal.SIGKILL)
        while alive(first):
            time.sleep(0.01)
        later = [_stored(context, 2), _stored(context, 3)]
        assert len(processor.apply(later)) == 4, "each message of the broken batch done again, alone"
        [second] = _processors()
        assert second != first
        assert os.sched_getscheduler(second) == os.SCHED_IDLE, "the one that replaced it runs as it did"
        os.kill(second, signal.SIGKILL)
        while alive(second):
            time.sleep(0.01)
        assert len(processor.apply([_stored(context, 4)])) == 2, "a message alone is tried again, not failed"
        assert _processors() and second not in _processors()
        with context.sessions() as session:
            assert set(session.scalars(select(Inbound.status))) == {"processed"}
    finally:
        processor.stop()


def test_batches_sent_side_by_side_each_get_their_own_answer(context: Context) -> None:
    """Threads send their batches without waiting for the one before to be applied; the process
    answers in the order it was sent to, and each thread reads its own batch's outbox ids, even when
    the first to send is the last to come for its answer."""
    processor = _processor(context)
    channel = processor._line.child.channel
    first_sender: list[int] = []

    class FirstSenderLate(threading.Condition):
        def __enter__(self) -> bool:
            if first_sender == [threading.get_ident()]:
                first_sender.append(0)
                time.sleep(0.5)
            return super().__enter__()

    class NotingTheFirstSender:
        def send(self, batch: object) -> None:
            channel.send(batch)
            if not first_sender:
                first_sender.append(threading.get_ident())

        def recv(self) -> object:
            return channel.recv()

    processor._line.child.channel = NotingTheFirstSender()  # type: ignore[assignment]
    processor._answers = FirstSenderLate()
    try:
        numbers = [[10 + 3 * thread + n for n in range(3)] for thread in range(4)]
        batches = [[_stored(context, number) for number in batch] for batch in numbers]
        with ThreadPoolExecutor(4) as threads:
            answers = list(threads.map(processor.apply, batches))
        assert len(first_sender) == 2, "the first sender came late"
        with context.sessions() as session:
            for batch, outbox_ids in zip(numbers, answers, strict=True):
                recipients = set(session.scalars(select(Outbox.recipient).where(Outbox.id.in_(outbox_ids))))
                assert recipients == {"camille@shop.example", *(f"c{number}@client.example" for number in batch)}
    finally:
        processor._line.child.channel = channel
        processor.stop()


def test_batches_in_flight_when_the_process_dies_are_all_applied(context: Context) -> None:
    """Killed with several batches sent: the one it was applying is tried again one message at a time,
    those it had not read yet go to the next process as they are; none is marked failed."""
    processor = _processor(context)
    try:
        batches = [[_stored(context, 30 + 3 * thread + n) for n in range(3)] for thread in range(4)]
        [first] = _processors()
        with ThreadPoolExecutor(4) as threads:
            applying = [threads.submit(processor.apply, batch) for batch in batches]
            while processor._line.sent < 2:
                time.sleep(0.001)
            os.kill(first, signal.SIGKILL)
            for future in applying:
                future.result(timeout=120)
        assert first not in _processors()
        with context.sessions() as session:
            assert set(session.scalars(select(Inbound.status))) == {"processed"}
            # Each message's two mails, once (a batch committed just before the kill is not applied again;
            # its mails, whose ids were lost with the answer, are sent by the sweep).
            assert session.scalar(select(func.count()).select_from(Outbox)) == 4 * 3 * 2
    finally:
        processor.stop()
