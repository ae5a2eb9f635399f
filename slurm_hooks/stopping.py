"""A clean stop for the daemons' loops on SIGTERM/SIGINT (what ``systemctl stop`` sends).

The signal only asks: the cycle under way (a batch of site-factor updates, a
poll of ``sacct``, an energy step with its journal) runs to its end, the sleep
after it is cut short, and the loop returns, so the process exits 0 at once
instead of being killed in the middle of a cycle or after its interval.
"""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("foresight.stopping")


class Stop:
    """A stop request that loops poll and sleep on."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, why: str = "asked") -> None:
        if not self._event.is_set():
            log.info("stopping after the current cycle (%s)", why)
        self._event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when a stop is requested."""
        return self._event.wait(max(seconds, 0.0))

    def on_signals(self, *signums: signal.Signals) -> Stop:
        """Request the stop on these signals (default SIGTERM and SIGINT); main thread only."""
        for signum in signums or (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda n, _frame: self.request(signal.Signals(n).name))
        return self
