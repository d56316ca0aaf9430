"""``gateway serve`` and ``gateway worker``: the long-running processes.

Start order matters: the schema is migrated, the worker runs, whatever was stored
but not processed (a crash, a ``kill -9``) is enqueued again, and only then does
SMTP accept new mail. Stop order is the reverse: stop accepting, finish, exit 0.
``gateway serve --role`` runs one part on a host of its own, beside the others on one PostgreSQL
database and one Redis broker (CONTRACT §11): any number of each, since every processor claims
whole conversations (``pipeline.claim``). ``gateway worker`` only adds threads that send mail.
"""

from __future__ import annotations

import logging
import socket
import threading

import dramatiq
import uvicorn
from dramatiq.brokers.stub import StubBroker

from gateway.clock import utcnow
from gateway.context import Context, open_context
from gateway.intake.admission import admit_waiting
from gateway.intake.imap import start_pollers
from gateway.intake.listener import Intake, check_port
from gateway.ports import bind
from gateway.rules.loader import load_rules
from gateway.runtime import one_malloc_arena, settle, stop_on_signals
from gateway.service import processor
from gateway.service.broker import YieldToTheListener, configure, start_workers
from gateway.service.sweep import Sweeper, requeue
from gateway.settings import ConfigError, Settings
from gateway.web.app import create_app

log = logging.getLogger("gateway")


def _drain(broker: dramatiq.Broker, workers: list[dramatiq.Worker]) -> None:
    """Let the in-process workers finish what they started before the process exits."""
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
    return bind(settings.http_host, settings.http_port, "web")


def _check_role(settings: Settings, role: str) -> None:
    """A role alone is one host among several, which share the database and the broker: on SQLite,
    or with the in-process broker, nothing would reach the other roles."""
    if role == "all":
        return
    if not settings.database_url.startswith("postgresql") or not settings.broker_url:
        raise ConfigError(f"gateway serve --role {role} runs beside other hosts on one PostgreSQL database "
                          "(database_url) and one Redis broker (broker_url); without them, run everything "
                          "in one gateway serve (--role all)")


class Web:
    """The pages, served in a thread of this process on the socket ``bind_web`` bound."""

    def __init__(self, context: Context, sock: socket.socket) -> None:
        self.server = uvicorn.Server(uvicorn.Config(create_app(context), log_level="warning", lifespan="off",
                                                    log_config=None))  # its lines go through ours: JSON off a TTY
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="web", daemon=True)
        self.thread.start()


class Poll:
    """On PostgreSQL, a processor also looks for work every ``SECONDS``: what another host's
    processor left when it died, and mail held back until every host had admitted what came before."""

    SECONDS = 1.0

    def __init__(self, context: Context) -> None:
        self.context = context
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.SECONDS):
            try:
                processor.drain(self.context)
            except Exception:  # the database is away: the next poll tries again
                log.exception("looking for messages to apply failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def serve(settings: Settings, role: str = "all") -> int:
    """Run the parts of the gateway ``role`` names (CONTRACT §11) until SIGTERM or SIGINT.

    ``smtp`` takes mail in (the listeners, IMAP) and admits it; ``process`` applies it, sends mail and
    runs the sweep; ``web`` serves the pages; ``all`` is the three in one process.
    """
    one_malloc_arena()
    takes_mail, processes, serves_web = (role in ("all", part) for part in ("smtp", "process", "web"))
    _check_role(settings, role)
    load_rules(settings.home)  # a broken rule file stops the start, with its file, line and reason
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)  # a folder made by an earlier version, or by hand, is closed to others too
    context = open_context(settings)
    if settings.clock_file is not None:
        log.warning("the clock is moved by %s (clock_file, for tests only): now is %s UTC", settings.clock_file,
                    utcnow().isoformat(timespec="seconds"))
    broker = configure(settings)
    if takes_mail:  # nothing to yield to on a host that takes no mail in
        broker.add_middleware(YieldToTheListener())
    workers = []
    if processes:
        processor.start(settings, yielding=takes_mail)
        sqlite = context.engine.dialect.name == "sqlite"  # one writer at a time: more sending threads only wait
        workers = start_workers(broker, {"inbound": 2, "outbox": 2 if sqlite else 4})
    if takes_mail:  # what was received but not admitted before a crash or a stop
        admit_waiting(context)
    if processes:  # what was stored but not applied, decisions not followed up, mail not sent
        left = requeue(context)
        if left:
            log.info("resuming %s stored messages, %s quote decisions and %s outgoing mails left unfinished",
                     left.inbound, left.decisions, left.outbox)
    stop = threading.Event()
    stop_on_signals(stop)  # before the start is announced: a SIGTERM right after it stops cleanly, with status 0
    parts = []
    intake, pollers = None, []
    if takes_mail:
        check_port(settings)
    web_socket = bind_web(settings) if serves_web else None
    if takes_mail:
        intake = Intake(context, on_lost=stop.set)
        pollers = start_pollers(context)
        parts.append(f"SMTP on {settings.smtp_host}:{settings.smtp_port}")
    web = Web(context, web_socket) if web_socket is not None else None
    if web is not None:
        parts.append(f"web on http://{settings.http_host}:{settings.http_port}")
    sweeper, poll = None, None
    if processes:
        sweeper = Sweeper(context)
        sweeper.start()
        poll = Poll(context) if context.engine.dialect.name == "postgresql" else None
        parts.append("applying messages, outgoing mail to " + (
            f"relay {settings.relay.host}:{settings.relay.port}" if settings.relay
            else str(settings.data_dir / "outbox")))
    settle()
    print(f"gateway{'' if role == 'all' else f' ({role})'}: {', '.join(parts)}, data in {settings.data_dir}",
          flush=True)
    stop.wait()
    if intake is not None:
        intake.stop()
    for poller in pollers:
        poller.stop()
    if sweeper is not None:
        sweeper.stop()
    if poll is not None:
        poll.stop()
    if web is not None:
        web.server.should_exit = True
    _drain(broker, workers)
    if processes:
        processor.stop()
    if web is not None:
        web.thread.join(timeout=10)
    log.info("stopped")
    return 1 if intake is not None and intake.lost else 0


def run_worker(settings: Settings, threads: int) -> int:
    if not settings.broker_url:
        raise ConfigError("gateway worker needs broker_url (e.g. redis://127.0.0.1:6379/0); without it, "
                          "gateway serve runs the workers itself")
    one_malloc_arena()
    broker = configure(settings)
    open_context(settings)
    workers = start_workers(broker, {"outbox": threads})
    settle()
    stop = threading.Event()
    stop_on_signals(stop)
    print(f"gateway worker: {threads} threads sending mail on {settings.broker_url}", flush=True)
    stop.wait()
    for worker in workers:
        worker.stop(timeout=30_000)
    return 0
