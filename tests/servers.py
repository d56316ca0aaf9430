"""PostgreSQL and Redis servers of a test's own, which it may stop and start: the machine's shared
servers serve the other tests running beside it (``pytest -n``), so a fault is never played on them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from conftest import answers, free_port

POSTGRES_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), Path("/nonexistent"))


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, the command runs as the postgres account."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _wait(port: int, up: bool, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while answers(port) is not up:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} on port {port} did not {'start' if up else 'stop'}")
        time.sleep(0.05)


class Postgres:
    """A PostgreSQL cluster in a temporary folder, on a free port, with trust authentication."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gw-pg-"))
        self.folder.chmod(0o755)
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        subprocess.run(_as_postgres([str(POSTGRES_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                     "--auth=trust", "--no-sync", "-E", "UTF8"]), check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(_as_postgres([str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                                     str(self.folder / "log"), "-o", options, "-w", "start"]),
                       check=True, capture_output=True)
        _wait(self.port, True, "PostgreSQL")

    def stop(self, mode: str = "fast") -> None:
        """``fast``: sessions are ended, as a restart by an operator or a failover does."""
        subprocess.run(_as_postgres([str(POSTGRES_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       check=True, capture_output=True)
        _wait(self.port, False, "PostgreSQL")

    def remove(self) -> None:
        if answers(self.port):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


class Redis:
    """A Redis server on a free port that keeps nothing on disk, as this machine's own does: a restart
    loses every queued message, which the gateway must survive."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                         "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        _wait(self.port, True, "Redis")

    def stop(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None
        _wait(self.port, False, "Redis")

    def remove(self) -> None:
        if self.process is not None:
            self.stop()
