"""A first-come, first-served queue for the app's heavy work (explanations), shared by every session.

Measured on 2 cores (docs/reliability.md#soak): four sessions computing their three maps at once each waited
36-66 s with no sign of why, and a classification beside them took up to 4.5 s (budget 0.3 s), because every
computation shared the same cores. With the queue, at most `slots` computations run at once, in arrival order;
the others wait and are told their place ("2 explanations ahead of yours"), and a classification only ever
competes with `slots` of them. A session that leaves while waiting (Streamlit stops its script) gives its
place up.
"""
from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

POLL_SECONDS = 0.5


@dataclass
class WorkQueue:
    """At most `slots` holders at once; the waiting ones in ticket order."""

    slots: int = 1
    _condition: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _tickets: Iterator[int] = field(default_factory=itertools.count, repr=False)
    _waiting: list[int] = field(default_factory=list, repr=False)
    _running: int = 0

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"a work queue needs at least one slot, got {self.slots}")

    def _ahead(self, ticket: int) -> int:
        """Computations that start before this waiting ticket (the running ones and the earlier tickets, less the
        slots); 0 or less: its turn. Called with the condition held."""
        return self._running + self._waiting.index(ticket) - self.slots + 1

    @contextlib.contextmanager
    def turn(self, on_wait: Callable[[int], None] | None = None) -> Iterator[None]:
        """Hold a slot for the `with` block; while waiting, `on_wait(ahead)` is called whenever the number ahead
        changes (from the waiting thread, so it may update the page). Leaving early (an exception from
        `on_wait`, e.g. Streamlit stopping the script) frees the place."""
        with self._condition:
            ticket = next(self._tickets)
            self._waiting.append(ticket)
        shown = None
        try:
            while True:
                with self._condition:
                    ahead = self._ahead(ticket)
                    if ahead <= 0:
                        self._waiting.remove(ticket)
                        self._running += 1
                        break
                if on_wait is not None and ahead != shown:
                    shown = ahead
                    on_wait(ahead)
                with self._condition:
                    self._condition.wait(POLL_SECONDS)
        except BaseException:
            with self._condition:
                self._waiting.remove(ticket)
                self._condition.notify_all()
            raise
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify_all()
