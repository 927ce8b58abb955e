"""The app's explanation queue (`ui.work_queue`): first come first served, places shown, places given up."""
from __future__ import annotations

import threading
import time

import pytest

from ui.work_queue import WorkQueue


class Waiter(threading.Thread):
    """Takes a turn; records every `ahead` it is told; holds the slot until `release` is set."""

    def __init__(self, queue: WorkQueue, name: str, order: list[str]) -> None:
        super().__init__(daemon=True)
        self.queue, self.label, self.order = queue, name, order
        self.told: list[int] = []
        self.waiting, self.running, self.release = threading.Event(), threading.Event(), threading.Event()

    def on_wait(self, ahead: int) -> None:
        self.told.append(ahead)
        self.waiting.set()

    def told_last(self, ahead: int, seconds: float = 10.0) -> bool:
        """Wait until the last place this waiter was told is `ahead` (it is told on its next look at the queue)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.told and self.told[-1] == ahead:
                return True
            time.sleep(0.01)
        return False

    def run(self) -> None:
        with self.queue.turn(self.on_wait):
            self.order.append(self.label)
            self.running.set()
            assert self.release.wait(30)


def test_one_slot_serves_in_arrival_order_and_tells_each_its_place():
    queue, order = WorkQueue(1), []
    first = Waiter(queue, "first", order)
    first.start()
    assert first.running.wait(10) and first.told == []  # a free slot: no waiting, nothing shown
    second, third = Waiter(queue, "second", order), Waiter(queue, "third", order)
    second.start()
    assert second.waiting.wait(10)
    third.start()
    assert third.waiting.wait(10)
    assert (second.told, third.told) == ([1], [2])
    first.release.set()
    assert second.running.wait(10)
    assert third.told_last(1)  # moved up one place while the second holds the slot
    assert not third.running.is_set()
    second.release.set()
    assert third.running.wait(10)
    third.release.set()
    for waiter in (first, second, third):
        waiter.join(10)
    assert order == ["first", "second", "third"]
    assert third.told == [2, 1]


def test_two_slots_run_two_at_once():
    queue, order = WorkQueue(2), []
    a, b, c = (Waiter(queue, n, order) for n in "abc")
    a.start()
    b.start()
    assert a.running.wait(10) and b.running.wait(10)
    c.start()
    assert c.waiting.wait(10) and c.told == [1]
    a.release.set()
    assert c.running.wait(10)
    b.release.set()
    c.release.set()


def test_a_session_that_leaves_while_waiting_gives_its_place_up():
    queue, order = WorkQueue(1), []
    holder = Waiter(queue, "holder", order)
    holder.start()
    assert holder.running.wait(10)

    def leave(ahead: int) -> None:  # as Streamlit stopping the script raises inside the page's status update
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), queue.turn(leave):
        pass
    late = Waiter(queue, "late", order)
    late.start()
    assert late.waiting.wait(10) and late.told == [1]  # only the holder is ahead: the place was given up
    holder.release.set()
    assert late.running.wait(10)
    late.release.set()


def test_a_queue_needs_a_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        WorkQueue(0)
