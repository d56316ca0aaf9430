"""The writer gate of SQLite transactions: one writer at a time, a click before background work, and
the gateway's processes in turn."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path

from gateway.context import Context, open_context
from gateway.intake.admission import store
from gateway.service.sweep import Sweep, sweep
from gateway.settings import Mailbox, Settings
from gateway.writer import WriterGate, writer


def test_a_click_goes_before_background_work_already_waiting() -> None:
    gate = WriterGate()
    order: list[str] = []
    first_holds = threading.Event()

    def write(name: str, urgent: bool, hold: float = 0.0) -> None:
        with gate.held(urgent=urgent):
            order.append(name)
            first_holds.set()
            time.sleep(hold)

    running = threading.Thread(target=write, args=("running follow-up", False, 0.3))
    running.start()
    first_holds.wait(5)
    queued = [threading.Thread(target=write, args=(f"follow-up {n}", False)) for n in range(8)]
    for thread in queued:
        thread.start()
    time.sleep(0.05)  # the follow-ups are waiting before the click comes
    click = threading.Thread(target=write, args=("click", True))
    click.start()
    for thread in [running, *queued, click]:
        thread.join(5)
    assert order[:2] == ["running follow-up", "click"], "the click waits for the running one only"
    assert sorted(order[2:]) == [f"follow-up {n}" for n in range(8)]


def test_one_writer_at_a_time_and_background_work_runs_once_the_clicks_are_done() -> None:
    gate = WriterGate()
    inside, most, done = [0], [0], []

    def write(name: str, urgent: bool) -> None:
        with gate.held(urgent=urgent):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.005)
            inside[0] -= 1
            done.append(name)

    threads = [threading.Thread(target=write, args=(f"w{n}", n % 2 == 0)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert most == [1] and sorted(done) == sorted(f"w{n}" for n in range(12))


def _hold_the_turn(settings: Settings, holding: Event) -> None:
    """A processor in the middle of a batch, as far as the other writers can tell."""
    with writer(open_context(settings), background=True):
        holding.set()
        time.sleep(60)


def _waits_while_another_process_writes(tmp_path: Path, write: Callable[[Context], object]) -> object:
    """``write`` run in a thread while another process holds the writer's turn: it must still be waiting
    a second later, and be done once that process is killed (a dead writer lets go). Its result."""
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", mailboxes=(Mailbox("support@shop.example"),))
    context = open_context(settings)
    spawn = multiprocessing.get_context("spawn")
    holding = spawn.Event()
    holder = spawn.Process(target=_hold_the_turn, args=(settings, holding), daemon=True)
    holder.start()
    assert holding.wait(60)
    done: list[object] = []
    writing = threading.Thread(target=lambda: done.append(write(context)))
    writing.start()
    writing.join(1)
    assert writing.is_alive() and not done, "it waits while another process writes"
    os.kill(holder.pid, signal.SIGKILL)
    writing.join(10)
    assert done, "a writer killed in its turn does not keep the others out"
    return done[0]


def test_admission_waits_for_the_writer_of_another_process_and_a_dead_one_lets_go(tmp_path: Path) -> None:
    _waits_while_another_process_writes(tmp_path, lambda context: store(
        context, b"From: a@client.example\r\nSubject: x\r\n\r\nBonjour\r\n", source="smtp",
        mailbox="support@shop.example"))


def test_the_sweep_waits_for_the_writer_of_another_process(tmp_path: Path) -> None:
    """The sweep runs beside the processor in ``gateway serve``: it takes its turn, rather than meeting
    SQLite's lock and sleeping in its retries."""
    swept = _waits_while_another_process_writes(tmp_path, sweep)
    assert isinstance(swept, Sweep) and swept.failed == []
