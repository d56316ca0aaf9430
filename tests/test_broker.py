"""The in-process broker of ``gateway serve``: its worker threads yield the CPU to the SMTP listener,
those that read mail ahead for the processor as far as the processor does."""

from __future__ import annotations

import os
import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker

from gateway.broker import YieldToTheListener
from gateway.inbound.processor import NICENESS


def _priority_of_a_worker_thread_of(queue: str) -> int:
    broker = StubBroker()
    broker.add_middleware(YieldToTheListener())
    seen: list[int] = []

    @dramatiq.actor(broker=broker, queue_name=queue)
    def probe() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    worker = dramatiq.Worker(broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        probe.send()
        broker.join(queue, timeout=10_000)
    finally:
        worker.stop()
    [priority] = seen
    return priority


def test_worker_threads_run_below_the_process_and_those_reading_mail_ahead_as_low_as_the_processor() -> None:
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert _priority_of_a_worker_thread_of("outbox") == min(19, here + 5)
    assert _priority_of_a_worker_thread_of("inbound") == min(19, here + NICENESS)
    assert here == os.getpriority(os.PRIO_PROCESS, 0), "this thread is untouched"
