"""The writer gate of SQLite transactions: one writer at a time, and a click before background work."""

from __future__ import annotations

import threading
import time

from gateway.transaction import WriterGate


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
