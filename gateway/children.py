"""The child processes of ``gateway serve`` (its SMTP listeners and its processor), and the socket each
one talks to its parent on.

Why not ``multiprocessing``: whatever it spawns, it first starts a resource tracker, one more Python
process that watches named semaphores and shared memory, and the gateway uses neither. A
child here is ``python -m gateway.children``, started with one end of a socket pair: it reads the
function to run and its arguments (pickled) from the socket, and calls it with the socket as a
``multiprocessing.connection.Connection``, on which the two go on talking. The child sees the same
``sys.path`` as its parent, as a spawned process would. The function may be given by its name
(``"package.module:function"``): the parent then need not import its module, and a command that starts
a child before its own imports has the two sets of imports run side by side.

A child whose parent dies reads the end of its socket: each child's function decides what then. A child
ignores Ctrl-C, which the terminal sends to the whole process group: the parent decides, and stops its
children. It is started with SIGINT blocked, and ignores it before it unblocks it: a Ctrl-C while it
started, before Python ran any of its code, printed the traceback of its imports.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from gateway.runtime import one_malloc_arena


class Child:
    """A child process running ``target(channel, *args)``; ``channel`` is the parent's end of the socket."""

    def __init__(self, target: Callable[..., Any] | str, *args: Any) -> None:
        self._target, self._args = target, args
        ours, theirs = socket.socketpair()
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        with theirs:
            # The interpreter's flags as multiprocessing passes them; -P: no current folder before sys.path.
            command = [sys.executable, *subprocess._args_from_interpreter_flags(), "-P",  # type: ignore[attr-defined]
                       "-m", "gateway.children", str(theirs.fileno())]
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # this thread's, inherited
            try:
                self.popen = subprocess.Popen(command, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                              env=environment)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.channel = Connection(ours.detach())
        try:
            self.channel.send((target, args))
        except BaseException:  # it would wait for its function forever
            self.kill()
            raise

    def again(self) -> Child:
        """Another child running the same function with the same arguments: one that died, replaced."""
        return Child(self._target, *self._args)

    @property
    def exitcode(self) -> int | None:
        return self.popen.poll()

    def is_alive(self) -> bool:
        return self.popen.poll() is None

    def join(self, timeout: float | None = None) -> None:
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait()

    def close(self) -> None:
        """Close the parent's end: the child reads the end of its socket."""
        self.channel.close()


def _main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    one_malloc_arena()
    channel = Connection(fd)
    try:
        target, args = channel.recv()
    except EOFError:  # the parent stopped before it said what to run
        return
    if isinstance(target, str):
        module, name = target.split(":")
        target = getattr(importlib.import_module(module), name)
    target(channel, *args)


if __name__ == "__main__":
    _main(int(sys.argv[1]))
