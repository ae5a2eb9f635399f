"""Burst siblings: same-shape jobs one user submits within seconds of each other.

Sweeps and job arrays arrive as *bursts*: one user (the account where a log
has no user ids) submits many jobs of one shape (CPUs, GPUs) within seconds.
Siblings run alike, so once one of them has ENDED its run time is the best
guess for the siblings still waiting. A job joins the burst of the previous
job of its key when it arrives at most ``gap`` seconds after it, else it
opens a new burst: the assignment uses only earlier submissions, so it is
causal and can be made live, one submission at a time.

``gap`` defaults to 60 s, chosen on the part of the Philly log before the
replay window (docs/simulator.md): up to 60 s between two jobs of one key
the earlier job's run time predicts the later one's with a mean min/max
accuracy of 0.75-0.79; between 60 s and 5 min, 0.59-0.60 (the first clear drop).

:class:`BurstTracker` is the one implementation (the simulator's
:class:`~policies.simulator.siblings.SiblingRescorer` drives it; a priority
daemon fed by the completion feed would too).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from predictor.history.keys import SEP, key_number, key_text
from predictor.history.stats import log_runtime

BURST_GAP_S = 60.0
#: The job fields :func:`burst_key` reads.
BURST_KEY_COLUMNS: tuple[str, ...] = ("user", "account", "cpus", "gpus")


def burst_key(job: Mapping[str, Any]) -> str | None:
    """The key siblings share: user (else account) + CPUs + GPUs; None without either id."""
    user, account = key_text(job, "user"), key_text(job, "account")
    if not (user or account):
        return None
    who = user if user else SEP + account  # an account never collides with a user name
    return SEP.join((who, key_number(job, "cpus"), key_number(job, "gpus")))


@dataclass
class _Burst:
    n: int = 0  # submissions so far
    ended: int = 0
    sum_log: float = 0.0  # sum of the ended siblings' log run times


@dataclass
class BurstTracker:
    """Assigns arriving jobs to bursts and keeps each burst's ended run times.

    ``submitted`` must be called in submit-time order (a submission earlier
    than the key's last one is an error: the burst rule is about arrival order).
    """

    gap: float = BURST_GAP_S
    _last: dict[Hashable, tuple[float, int]] = field(default_factory=dict)  # key -> (t, burst)
    _bursts: list[_Burst] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.gap >= 0:
            raise ValueError(f"burst gap must be >= 0 seconds, got {self.gap}")

    def submitted(self, key: Hashable | None, submit_time: float) -> int:
        """The burst id of a job of ``key`` arriving at ``submit_time`` (key None: alone)."""
        if not math.isfinite(submit_time):
            raise ValueError(f"submit time must be finite, got {submit_time}")
        last = self._last.get(key) if key is not None else None
        if last is not None and submit_time < last[0]:
            raise ValueError(f"submissions of key {key!r} out of order: {submit_time} < {last[0]}")
        if last is not None and submit_time - last[0] <= self.gap:
            burst = last[1]
        else:
            burst = len(self._bursts)
            self._bursts.append(_Burst())
        self._bursts[burst].n += 1
        if key is not None:
            self._last[key] = (submit_time, burst)
        return burst

    def ended(self, burst: int, run_time: float) -> None:
        """A job of ``burst`` ended after ``run_time`` seconds."""
        b = self._bursts[burst]
        b.ended += 1
        b.sum_log += log_runtime(run_time)

    def size(self, burst: int) -> int:
        """Jobs submitted to ``burst`` so far."""
        return self._bursts[burst].n

    def ended_count(self, burst: int) -> int:
        """Jobs of ``burst`` that have ended."""
        return self._bursts[burst].ended

    def sibling_log_runtime(self, burst: int) -> float:
        """Mean log run time of the burst's ended jobs (NaN while none has ended)."""
        b = self._bursts[burst]
        return b.sum_log / b.ended if b.ended else math.nan

    def estimate(self, burst: int, predicted: float, weight: float = 1.0) -> float:
        """``predicted`` blended in log space with the ended siblings' mean:
        ``exp(w * siblings + (1 - w) * log(predicted))``, ``w = weight`` once any
        sibling has ended (``predicted`` unchanged before)."""
        sib = self.sibling_log_runtime(burst)
        if math.isnan(sib):
            return predicted
        return math.exp(weight * sib + (1.0 - weight) * log_runtime(predicted))
