"""How the long-running processes are set up, in one place: thread priorities, the garbage collector,
the C allocator, Ctrl-C, and where their metrics are counted.

On Linux a priority (niceness, scheduling policy) belongs to a thread, so a process lowers only the
threads whose work can wait (admission, the processor, the workers), and the others keep answering
mail clients and web pages at full priority. The figures behind each choice are in bench/README.md.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("gateway")


def lower_priority(steps: int) -> None:
    """Lower the calling thread's priority by ``steps`` of niceness (19 at most)."""
    me = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + steps))
    except OSError as error:  # not allowed here: run at the same priority as the rest
        log.debug("could not lower the priority of %s: %s", threading.current_thread().name, error)


def run_when_idle() -> None:
    """The calling thread runs only on a CPU that no other thread wants (``SCHED_IDLE``).

    At nice 19 alone, a listener woken by its client waits for the end of the running thread's time
    slice (Linux's EEVDF scheduler gives nice 19 the same slice as the rest); a ``SCHED_IDLE``
    thread gives the CPU up at once. Nice 19 as well, where ``SCHED_IDLE`` is not allowed.
    """
    lower_priority(19)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as error:
        log.debug("could not make %s run when idle: %s", threading.current_thread().name, error)


_M_ARENA_MAX = -8  # glibc's mallopt parameter


def one_malloc_arena() -> None:
    """Every thread of this process allocates from glibc's one main arena; call it before any thread starts.

    By default glibc gives each thread that allocates while another does an arena of its own, up to
    8 a core, and each keeps the high-water mark of what its thread held: the serving process's dozen
    threads (SQLite's caches, parsed messages, pickled batches) would each keep theirs.
    Under CPython's GIL, threads seldom allocate at the same moment, so one arena costs them no waiting.
    Not on a C library without ``mallopt`` (musl): nothing to do there.
    """
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        log.debug("no mallopt in this C library: the allocator is left as it is")


def settle() -> None:
    """Once a long-running process has started (``serve``, its processor, ``worker``).

    What starting made (modules, the engine, rules and templates) lives as long as the process:
    ``gc.freeze`` keeps the cyclic collector from going through it at every full collection. A batch
    applied makes many objects that live until its commit: young collections every 10,000
    allocations instead of 700 do not go over them again and again.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def stop_on_signals(stop: threading.Event) -> dict[int, Any]:
    """SIGTERM and Ctrl-C (SIGINT) set ``stop`` instead of stopping the process wherever its main thread
    is: a long-running process or command stops where it looks, between two steps, never halfway through
    one (a lock taken and never given back, which the threads stopping after it then waited for; mails
    written and not marked sent). Another signal while it stops changes nothing; ``kill -9`` loses
    nothing either. Main thread only, as ``signal.signal``; returns the handlers replaced."""
    def handle(number: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(number).name)
        stop.set()

    return {number: signal.signal(number, handle) for number in (signal.SIGTERM, signal.SIGINT)}


@contextmanager
def interrupt_as_request() -> Iterator[threading.Event]:
    """``stop_on_signals`` for a command, while it runs: the event it sets, the handlers given back after."""
    interrupted = threading.Event()
    previous = stop_on_signals(interrupted)
    try:
        yield interrupted
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def leave() -> None:
    """A command is done and its process ends: what it holds is left to the system. The interpreter's last
    cyclic collection would go through every object still alive, 0.1-0.3 s once the pipeline is imported
    (a twentieth of a 1,000-mail ``gateway import``); frozen, they are not gone through. Nothing is lost:
    the files and connections that matter are closed by their owners before this, the standard streams
    and the log's handlers are flushed after it, and the system closes the rest."""
    gc.freeze()


def count_in(folder: Path) -> None:
    """This process and those it starts count their metrics in ``folder``, emptied first: ``serve``'s
    processes sum their counts there, from zero at each start (``gateway.metrics``). prometheus-client
    reads the folder's name when it is imported, so this must come first."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("runtime.count_in must run before gateway.metrics is imported")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
