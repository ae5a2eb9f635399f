"""A clean stop for the daemons' loops on SIGTERM/SIGINT (what ``systemctl stop`` sends).

The signal only asks: the cycle under way (a batch of site-factor updates, a
poll of ``sacct``, an energy step with its journal) runs to its end, the sleep
after it is cut short, and the loop returns, so the process exits 0 at once
instead of being killed in the middle of a cycle or after its interval.

The signal handler only sets a field: no lock, no I/O (a handler runs between
two bytecodes of the main thread, which may hold the very lock it would take).
So the sleep polls that field every :data:`TICK_S` instead of waiting on an event.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("foresight.stopping")
TICK_S = 0.2


class Stop:
    """A stop request that loops poll and sleep on."""

    def __init__(self) -> None:
        self._why: str | None = None
        self._said = False

    @property
    def requested(self) -> bool:
        """Whether a stop was asked (the first time it is seen, it is also logged)."""
        if self._why is not None and not self._said:
            self._said = True
            log.info("stopping (%s): the cycle under way was finished", self._why)
        return self._why is not None

    def request(self, why: str = "asked") -> None:
        """Ask the loop to stop (safe inside a signal handler)."""
        if self._why is None:
            self._why = why

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (within a tick) once a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.requested:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, TICK_S))
        return True

    @contextmanager
    def on_signals(self, *signums: signal.Signals) -> Iterator[Stop]:
        """Within the block, these signals (default SIGTERM, SIGINT) request the stop;
        the previous handlers come back after it. Main thread only."""
        previous = {
            s: signal.signal(s, lambda n, _frame: self.request(signal.Signals(n).name))
            for s in signums or (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
