"""The in-process broker of ``gateway serve``: its worker threads run only on a CPU that the SMTP
listeners and the web page leave idle, as the processor does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import dramatiq
from dramatiq.brokers.stub import StubBroker

from gateway.service.broker import YieldToTheListener


def _priority_of_a_worker_thread_of(queue: str) -> tuple[int, int]:
    """The scheduling policy and the niceness of a worker thread of ``queue``."""
    broker = StubBroker()
    broker.add_middleware(YieldToTheListener())
    seen: list[tuple[int, int]] = []

    @dramatiq.actor(broker=broker, queue_name=queue)
    def probe() -> None:
        seen.append((os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))

    worker = dramatiq.Worker(broker, queues={queue}, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        probe.send()
        broker.join(queue, timeout=10_000)
    finally:
        worker.stop()
    [priority] = seen
    return priority


def test_worker_threads_run_only_when_a_cpu_is_idle() -> None:
    here = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert _priority_of_a_worker_thread_of("outbox") == (os.SCHED_IDLE, 19)
    assert _priority_of_a_worker_thread_of("inbound") == (os.SCHED_IDLE, 19)
    assert here == (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0)) != (os.SCHED_IDLE, 19), \
        "this thread is untouched"


def test_the_embedded_default_serves_without_the_redis_client(tmp_path: Path) -> None:
    """The Redis client is 7.6 MB of the serving process; without ``broker_url`` nothing loads it."""
    code = ("import sys; from pathlib import Path; import gateway.service.serve; "
            "from gateway.service.broker import configure; from gateway.settings import Settings; "
            f"configure(Settings(home=Path({str(tmp_path)!r}))); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis' or m == 'dramatiq.brokers.redis'))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
