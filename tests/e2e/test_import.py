"""``gateway import`` of an archive large enough for the processor: the same claims and batches as
``serve``, every conversation in the order of the archive, each message once."""

from __future__ import annotations

import json
import mailbox
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import mail, write_home

from gateway.intake.archives import OWN_PROCESS_FROM

CUSTOMERS = OWN_PROCESS_FROM // 3 + 5  # three mails each: past the size that starts a processor


def test_a_large_archive_is_applied_by_the_processor_each_conversation_in_the_archives_order(tmp_path: Path) -> None:
    config = write_home(tmp_path)
    archive = mailbox.mbox(tmp_path / "history.mbox")
    half = CUSTOMERS // 2
    # half the customers write their three mails in a row (one batch holds them all), then the others'
    # first mails, their first replies, their second ones (a batch holds one of each conversation)
    order = [(c, step) for c in range(half) for step in range(3)]
    order += [(c, step) for step in range(3) for c in range(half, CUSTOMERS)]
    for customer, step in order:
        headers = {"message_id": f"<c{customer}-{step}@client.example>"}
        if step:
            headers["In_Reply_To"] = f"<c{customer}-{step - 1}@client.example>"
            headers["References"] = " ".join(f"<c{customer}-{s}@client.example>" for s in range(step))
        archive.add(mail(f"c{customer}@client.example", "support@shop.example",
                         ("Re: " if step else "") + f"Commande {customer}", f"message {step}", **headers))
    archive.add(archive[0])  # the same message twice in a history: applied once
    archive.flush()
    archive.close()
    done = subprocess.run([sys.executable, "-m", "gateway", "import", str(tmp_path / "history.mbox"), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env={**os.environ, "GATEWAY_CONFIG": str(config)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == {"processed": 3 * CUSTOMERS, "duplicate": 1}
    with sqlite3.connect(tmp_path / "var" / "gateway.db") as db:
        texts: dict[str, list[str]] = {}
        for subject, text in db.execute("SELECT r.subject, c.text FROM comments c JOIN requests r "
                                        "ON r.id = c.request_id ORDER BY c.id"):
            texts.setdefault(subject, []).append(text)
        pending = db.execute("SELECT count(*) FROM inbound WHERE status = 'pending'").fetchone()[0]
    assert len(texts) == CUSTOMERS, "each follow-up threaded to its customer's request"
    assert all(said == ["message 0", "message 1", "message 2"] for said in texts.values()), "in the archive's order"
    assert pending == 0
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == CUSTOMERS, "one acknowledgment each"


def test_a_large_archive_for_a_mailbox_not_configured_stops_with_its_reason_and_leaves_no_processor(
        tmp_path: Path) -> None:
    """The processor of a large archive is started before the command reads its configuration through:
    a command that then stops takes it down with it."""
    config = write_home(tmp_path)
    _distinct_customers(tmp_path / "history.mbox")
    done = subprocess.run([sys.executable, "-m", "gateway", "import", str(tmp_path / "history.mbox"),
                           "--mailbox", "nobody@shop.example"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={**os.environ, "GATEWAY_CONFIG": str(config)})
    assert done.returncode == 1
    assert "nobody@shop.example is not a configured mailbox" in done.stderr
    assert "Traceback" not in done.stderr, "the processor is stopped, not left to find its parent gone"
    assert _in(tmp_path) == [], "the processor it started is gone with it"
    assert not (tmp_path / "var" / "gateway.db").exists(), "nothing stored"


@pytest.mark.parametrize(("when", "how"), [("its processor starts", "ctrl-c"), ("it applies", "ctrl-c"),
                                           ("it applies", "sigterm")])
def test_a_ctrl_c_or_sigterm_stops_a_large_import_without_a_traceback_and_loses_nothing(
        tmp_path: Path, when: str, how: str) -> None:
    """Ctrl-C reaches the whole process group: the processor too, which may still be starting (its
    interpreter, its imports); SIGTERM (``kill``, a service manager) the command alone. The command
    stops between two batches, with every mail of what it applied sent, says where it stood, and the
    same import run again applies everything once."""
    config = write_home(tmp_path)
    _distinct_customers(tmp_path / "history.mbox")
    env = {**os.environ, "GATEWAY_CONFIG": str(config)}
    command = subprocess.Popen(  # a group of its own, as a shell runs a command; Ctrl-C not ignored
        [sys.executable, "-m", "gateway", "import", str(tmp_path / "history.mbox")], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env, process_group=0, restore_signals=True)
    deadline = time.monotonic() + 60
    while not (len(_in(tmp_path)) > 1 if when == "its processor starts" else _stored(tmp_path)):
        assert command.poll() is None and time.monotonic() < deadline, "it got there"
        time.sleep(0.005)
    if how == "ctrl-c":
        os.killpg(command.pid, signal.SIGINT)
    else:
        command.send_signal(signal.SIGTERM)
    _out, err = command.communicate(timeout=60)
    assert command.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "Fatal Python error" not in err, err[-3000:]
    assert _in(tmp_path) == [], "no process left"
    if when == "it applies":
        assert f"interrupted: {OWN_PROCESS_FROM} of {OWN_PROCESS_FROM} messages stored" in err
        with sqlite3.connect(tmp_path / "var" / "gateway.db") as db:
            unsent = db.execute("SELECT count(*) FROM outbox o JOIN inbound i ON i.request_id = o.request_id "
                                "WHERE i.status = 'processed' AND o.status <> 'sent'").fetchone()[0]
        assert unsent == 0, "what it applied, it sent"
    again = subprocess.run([sys.executable, "-m", "gateway", "import", str(tmp_path / "history.mbox"), "--json"],
                           capture_output=True, text=True, cwd=tmp_path, timeout=120, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    with sqlite3.connect(tmp_path / "var" / "gateway.db") as db:
        statuses = dict(db.execute("SELECT status, count(*) FROM inbound GROUP BY status").fetchall())
        requests = db.execute("SELECT count(*) FROM requests").fetchone()[0]
    assert statuses.get("processed") == requests == OWN_PROCESS_FROM, statuses
    assert set(statuses) <= {"processed", "duplicate"}, statuses
    assert len(list((tmp_path / "var" / "outbox" / "new").iterdir())) == OWN_PROCESS_FROM, "one acknowledgment each"


def test_a_maildir_message_that_cannot_be_read_is_left_out_said_and_fails_the_command(tmp_path: Path) -> None:
    config = write_home(tmp_path)
    box = mailbox.Maildir(tmp_path / "box")
    keys = [box.add(mail(f"c{n}@client.example", "support@shop.example", f"Commande {n}", "Bonjour"))
            for n in range(3)]
    (tmp_path / "box" / "new" / keys[1]).unlink()
    (tmp_path / "box" / "new" / keys[1]).symlink_to(tmp_path / "gone")
    (tmp_path / "box" / "new" / "1796600001.M1P1Q1.host").symlink_to(config)  # its secret key never mailed
    os.mkfifo(tmp_path / "box" / "cur" / "1796600002.M1P1Q2.host:2,S")  # never waited on
    done = subprocess.run([sys.executable, "-m", "gateway", "import", str(tmp_path / "box"), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "GATEWAY_CONFIG": str(config)})
    assert done.returncode == 1
    assert json.loads(done.stdout) == {"processed": 2, "unreadable": 3}
    assert f"not read, left out: {keys[1]}: a symbolic link, not followed" in done.stderr
    assert "not read, left out: 1796600001.M1P1Q1.host: a symbolic link, not followed" in done.stderr
    assert "not read, left out: 1796600002.M1P1Q2.host: not a regular file" in done.stderr


def test_a_data_folder_that_cannot_be_made_is_said_plainly(tmp_path: Path) -> None:
    config = write_home(tmp_path)
    (tmp_path / "var").write_text("a file where the data folder goes")
    _distinct_customers(tmp_path / "history.mbox")
    done = subprocess.run([sys.executable, "-m", "gateway", "import", str(tmp_path / "history.mbox")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "GATEWAY_CONFIG": str(config)})
    assert done.returncode == 1
    assert "data_dir" in done.stderr and "cannot be made: File exists" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def _distinct_customers(path: Path) -> None:
    """An archive of ``OWN_PROCESS_FROM`` first mails, each of a customer of its own: large enough for a processor."""
    archive = mailbox.mbox(path)
    for customer in range(OWN_PROCESS_FROM):
        archive.add(mail(f"c{customer}@client.example", "support@shop.example", f"Commande {customer}", "Bonjour"))
    archive.close()


def _in(home: Path) -> list[str]:
    """The processes working in ``home`` (the command and its processor run there)."""
    return [pid for pid in os.listdir("/proc") if pid.isdigit() and _cwd(pid) == home]


def _cwd(pid: str) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _stored(home: Path) -> int:
    if not (home / "var" / "gateway.db").exists():
        return 0
    try:
        with sqlite3.connect(home / "var" / "gateway.db") as db:
            return int(db.execute("SELECT count(*) FROM inbound").fetchone()[0])
    except sqlite3.OperationalError:  # not migrated yet
        return 0
