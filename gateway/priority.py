"""Lowering a thread's priority: work that can wait gives way to answering mail clients.

On Linux a priority (niceness) belongs to a thread, so a process lowers only the threads
whose work can wait, and the others keep answering at full priority.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("gateway")


def lower_priority(steps: int) -> None:
    """Lower the calling thread's priority by ``steps`` of niceness (19 at most)."""
    me = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + steps))
    except OSError as error:  # not allowed here: run at the same priority as the rest
        log.debug("could not lower the priority of %s: %s", threading.current_thread().name, error)
