"""The dramatiq broker: Redis when ``broker_url`` is set, else an in-process stub broker.

The same actors run on both; ``configure`` must run before ``gateway.tasks`` is imported,
since dramatiq binds actors to the broker current when they are declared.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from gateway.settings import Settings


def configure(settings: Settings) -> dramatiq.Broker:
    broker: dramatiq.Broker
    if settings.broker_url:
        broker = RedisBroker(url=settings.broker_url, namespace=settings.broker_namespace)  # type: ignore[no-untyped-call]
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    import gateway.tasks  # noqa: F401  (declares the actors on this broker)

    for actor in (gateway.tasks.process_inbound, gateway.tasks.send_mail):
        actor.broker = broker
        broker.declare_actor(actor)
    return broker


def start_worker(broker: dramatiq.Broker, threads: int) -> dramatiq.Worker:
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker
