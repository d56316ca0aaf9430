"""The writer gate of SQLite transactions: one writer at a time, a click before background work, and
the gateway's processes in turn."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from gateway.context import open_context
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


def test_admission_waits_for_the_writer_of_another_process_and_a_dead_one_lets_go(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", mailboxes=(Mailbox("support@shop.example"),))
    context = open_context(settings)
    spawn = multiprocessing.get_context("spawn")
    holding = spawn.Event()
    holder = spawn.Process(target=_hold_the_turn, args=(settings, holding), daemon=True)
    holder.start()
    assert holding.wait(60)
    stored: list[int] = []
    admission = threading.Thread(target=lambda: stored.append(store(
        context, b"From: a@client.example\r\nSubject: x\r\n\r\nBonjour\r\n", source="smtp",
        mailbox="support@shop.example")))
    admission.start()
    admission.join(1)
    assert admission.is_alive() and not stored, "admission waits while another process writes"
    os.kill(holder.pid, signal.SIGKILL)
    admission.join(10)
    assert stored, "a writer killed in its turn does not keep the others out"


def test_the_sweep_waits_for_the_writer_of_another_process(tmp_path: Path) -> None:
    """The sweep runs beside the processor in ``gateway serve``: it takes its turn, rather than meeting
    SQLite's lock and sleeping in its retries."""
    settings = Settings(home=tmp_path, data_dir=tmp_path / "var", mailboxes=(Mailbox("support@shop.example"),))
    context = open_context(settings)
    spawn = multiprocessing.get_context("spawn")
    holding = spawn.Event()
    holder = spawn.Process(target=_hold_the_turn, args=(settings, holding), daemon=True)
    holder.start()
    assert holding.wait(60)
    swept: list[Sweep] = []
    sweeping = threading.Thread(target=lambda: swept.append(sweep(context)))
    sweeping.start()
    sweeping.join(1)
    assert sweeping.is_alive() and not swept, "the sweep waits while another process writes"
    os.kill(holder.pid, signal.SIGKILL)
    sweeping.join(10)
    assert swept and swept[0].failed == []
