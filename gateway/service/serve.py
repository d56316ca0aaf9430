"""``gateway serve`` and ``gateway worker``: the long-running processes.

Start order matters: the schema is migrated, the worker runs, whatever was stored
but not processed (a crash, a ``kill -9``) is enqueued again, and only then does
SMTP accept new mail. Stop order is the reverse: stop accepting, finish, exit 0.
``gateway worker`` only adds threads that send mail, on the Redis broker: the messages are
applied by ``gateway serve``'s processor alone, in the order they were received.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from types import FrameType

import dramatiq
import uvicorn

from gateway.clock import utcnow
from gateway.context import Context, open_context
from gateway.intake.admission import admit_waiting
from gateway.intake.imap import start_pollers
from gateway.intake.listener import Intake, check_port
from gateway.rules.loader import load_rules
from gateway.runtime import settle
from gateway.service import processor
from gateway.service.broker import YieldToTheListener, configure, start_workers
from gateway.service.sweep import Requeued, Sweeper, requeue
from gateway.settings import ConfigError, Settings
from gateway.web.app import create_app

log = logging.getLogger("gateway")


def resume_unfinished(context: Context) -> Requeued:
    """Admit received messages left in ``incoming/``, then enqueue stored messages not yet
    processed, quote decisions not yet followed up and outbox rows not yet sent."""
    admit_waiting(context)
    return requeue(context)


def _stop_on_signals(stop: threading.Event) -> None:
    """Set before the start is announced: a SIGTERM right after it stops cleanly, with status 0."""
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _drain(broker: dramatiq.Broker, workers: list[dramatiq.Worker]) -> None:
    """Let the in-process workers finish what they started before the process exits."""
    from dramatiq.brokers.stub import StubBroker

    if isinstance(broker, StubBroker):
        for queue in ("inbound", "outbox"):
            # A task that failed (the database was away) left its rows pending: the next start or sweep
            # queues them again, so it does not fail the stop.
            broker.join(queue, timeout=60_000, fail_fast=False)
    for worker in workers:
        worker.stop(timeout=30_000)


def bind_web(settings: Settings) -> socket.socket:
    """The web port, bound here rather than in the web thread: a port that is taken stops the start
    with a clear error, as the SMTP port does, instead of a gateway running without its pages."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past connections do not count
    try:
        sock.bind((settings.http_host, settings.http_port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"web on {settings.http_host}:{settings.http_port}: {error.strerror or error}") from None
    return sock


def serve(settings: Settings) -> int:
    load_rules(settings.home)  # a broken rule file stops the start, with its file, line and reason
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)  # a folder made by an earlier version, or by hand, is closed to others too
    context = open_context(settings)
    if settings.clock_file is not None:
        log.warning("the clock is moved by %s (clock_file, for tests only): now is %s UTC", settings.clock_file,
                    utcnow().isoformat(timespec="seconds"))
    broker = configure(settings)
    broker.add_middleware(YieldToTheListener())
    applying = processor.start(settings)
    sqlite = context.engine.dialect.name == "sqlite"  # one writer at a time: more sending threads only wait
    workers = start_workers(broker, {"inbound": 2, "outbox": 2 if sqlite else 4})
    left = resume_unfinished(context)
    if left:
        log.info("resuming %s stored messages, %s quote decisions and %s outgoing mails left unfinished",
                 left.inbound, left.decisions, left.outbox)
    stop = threading.Event()
    _stop_on_signals(stop)
    check_port(settings)
    web_socket = bind_web(settings)
    intake = Intake(context, on_lost=stop.set)
    web = uvicorn.Server(uvicorn.Config(create_app(context), log_level="warning", lifespan="off",
                                        log_config=None))  # its lines go through ours: JSON off a terminal
    web_thread = threading.Thread(target=web.run, kwargs={"sockets": [web_socket]}, name="web", daemon=True)
    web_thread.start()
    pollers = start_pollers(context)
    sweeper = Sweeper(context)
    sweeper.start()
    settle()
    print(f"gateway: SMTP on {settings.smtp_host}:{settings.smtp_port}, web on http://{settings.http_host}:"
          f"{settings.http_port}, data in {settings.data_dir}, outgoing mail to "
          + (f"relay {settings.relay.host}:{settings.relay.port}" if settings.relay
             else str(settings.data_dir / "outbox")), flush=True)
    stop.wait()
    intake.stop()
    for poller in pollers:
        poller.stop()
    sweeper.stop()
    web.should_exit = True
    _drain(broker, workers)
    applying.stop()
    web_thread.join(timeout=10)
    log.info("stopped")
    return 1 if intake.lost else 0


def run_worker(settings: Settings, threads: int) -> int:
    if not settings.broker_url:
        raise ConfigError("gateway worker needs broker_url (e.g. redis://127.0.0.1:6379/0); without it, "
                          "gateway serve runs the workers itself")
    broker = configure(settings)
    open_context(settings)
    workers = start_workers(broker, {"outbox": threads})
    settle()
    stop = threading.Event()
    _stop_on_signals(stop)
    print(f"gateway worker: {threads} threads sending mail on {settings.broker_url}", flush=True)
    stop.wait()
    for worker in workers:
        worker.stop(timeout=30_000)
    return 0
