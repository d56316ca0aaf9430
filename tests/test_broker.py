"""The in-process broker of ``gateway serve``: its worker threads yield the CPU to the SMTP listener."""

from __future__ import annotations

import os
import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker

from gateway.broker import YieldToTheListener


def test_worker_threads_run_five_steps_of_niceness_below_the_process() -> None:
    broker = StubBroker()
    broker.add_middleware(YieldToTheListener())
    seen: list[int] = []

    @dramatiq.actor(broker=broker, queue_name="probe")
    def probe() -> None:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    worker = dramatiq.Worker(broker, queues={"probe"}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        probe.send()
        broker.join("probe", timeout=10_000)
    finally:
        worker.stop()
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(19, here + 5)] and here == os.getpriority(os.PRIO_PROCESS, 0), "this thread is untouched"
