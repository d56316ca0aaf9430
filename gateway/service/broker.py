"""The dramatiq broker: Redis when ``broker_url`` is set, else an in-process stub broker.

The same actors run on both: ``configure`` declares them on the broker it makes, the one
``gateway.queues`` hands work to.
"""

from __future__ import annotations

import logging
import threading

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware

from gateway.runtime import run_when_idle
from gateway.service.tasks import declare
from gateway.settings import Settings


class YieldToTheListener(Middleware):
    """In ``gateway serve``, worker threads run only when the SMTP listeners and the web page
    leave a CPU idle, as the processor does: acknowledging mail and answering a click come first;
    reading mail ahead for the processor and sending mail can wait."""

    def after_worker_thread_boot(self, broker: dramatiq.Broker, thread: threading.Thread) -> None:
        run_when_idle()


def configure(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.broker_url:
        # Imported only here, to keep start-up light: the Redis client is 7.6 MB of memory and a tenth of a
        # second of CPU that the embedded default (no broker_url) never uses.
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=settings.broker_url, namespace=settings.broker_namespace)  # type: ignore[no-untyped-call]
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    declare(broker)
    return broker


def _second_worker_is_intended(record: logging.LogRecord) -> bool:
    """Each dramatiq worker adds its own middleware to the broker, and the broker warns of the second."""
    return "same type twice" not in record.getMessage()


def start_workers(broker: dramatiq.Broker, threads: dict[str, int]) -> list[dramatiq.Worker]:
    """One worker per queue (``threads``: queue name, its threads), so sending mail never waits
    behind processing, nor the reverse."""
    broker.logger.addFilter(_second_worker_is_intended)
    workers = [dramatiq.Worker(broker, queues={queue}, worker_threads=count, worker_timeout=100)
               for queue, count in threads.items()]
    for worker in workers:
        worker.start()
    return workers
