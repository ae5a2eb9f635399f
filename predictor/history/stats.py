"""Running statistics of one history bucket (a user, an account, a job name, ...).

All updates are O(1); ``features(now)`` turns the state into model inputs.
Run times enter in log space (``log(max(run, 1 s))``), the scale the models
predict on.
"""

from __future__ import annotations

import math
from collections import deque

RECENT_K = 5
EWMA_ALPHA = 0.3
NAN = float("nan")

#: Per-kind feature names (prefixed by the kind in the full feature vector).
STAT_FEATURES: tuple[str, ...] = (
    "n",
    "last1",
    "last2",
    "med5",
    "mean",
    "std",
    "ewma",
    "limit_ratio",
    "since_end",
    "since_submit",
    "running",
)


def log_runtime(seconds: float) -> float:
    """The models' target scale: natural log of the run time, floored at 1 s."""
    return math.log(max(seconds, 1.0))


class KeyStats:
    """Counts, recency and moments of the ended jobs of one key, plus its submissions."""

    __slots__ = (
        "ewma",
        "last_end",
        "last_submit",
        "n",
        "n_submitted",
        "ratio_ewma",
        "recent",
        "recent_log",
        "sum_log",
        "sum_run",
        "sumsq_log",
    )

    def __init__(self) -> None:
        self.n = 0
        self.sum_log = 0.0
        self.sumsq_log = 0.0
        self.sum_run = 0.0
        self.recent: deque[float] = deque(maxlen=RECENT_K)  # raw run times, newest last
        self.recent_log: deque[float] = deque(maxlen=RECENT_K)  # their logs
        self.ewma = NAN
        self.ratio_ewma = NAN
        self.last_end = NAN
        self.n_submitted = 0
        self.last_submit = NAN

    def add_ended(self, run_time: float, lg: float, end_time: float, ratio: float) -> None:
        """Fold in one ended job, given ``lg = log_runtime(run_time)`` and ``ratio = lg -
        log_runtime(time_limit)`` (NaN without a limit), computed once for all its keys."""
        n = self.n = self.n + 1
        self.sum_log += lg
        self.sumsq_log += lg * lg
        self.sum_run += run_time
        self.recent.append(run_time)
        self.recent_log.append(lg)
        self.ewma = lg if n == 1 else EWMA_ALPHA * lg + (1 - EWMA_ALPHA) * self.ewma
        if ratio == ratio:  # not NaN
            old = self.ratio_ewma
            self.ratio_ewma = ratio if old != old else EWMA_ALPHA * ratio + (1 - EWMA_ALPHA) * old
        if not end_time <= self.last_end:  # also true when last_end is NaN
            self.last_end = end_time

    def add_submitted(self, submit_time: float) -> None:
        """Count one submission (for the running/queued-jobs feature)."""
        self.n_submitted += 1
        if not submit_time <= self.last_submit:
            self.last_submit = submit_time

    def last2_mean(self) -> float:
        """Tsafrir's estimate: mean of the last two ended run times (NaN if none)."""
        if not self.recent:
            return NAN
        if len(self.recent) == 1:
            return self.recent[-1]
        return (self.recent[-1] + self.recent[-2]) / 2.0

    def mean_run(self) -> float:
        """Mean raw run time of all ended jobs (NaN if none)."""
        return self.sum_run / self.n if self.n else NAN

    def features(self, now: float) -> list[float]:
        """The :data:`STAT_FEATURES` values at time ``now``."""
        n = self.n
        running = float(max(self.n_submitted - n, 0))
        since_submit = (
            math.log1p(max(now - self.last_submit, 0.0)) if self.n_submitted else NAN
        )
        if n == 0:
            return [0.0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, since_submit, running]
        logs = sorted(self.recent_log)
        k = len(logs)
        med = logs[k // 2] if k % 2 else 0.5 * (logs[k // 2 - 1] + logs[k // 2])
        mean = self.sum_log / n
        var = max(self.sumsq_log / n - mean * mean, 0.0)
        return [
            math.log1p(n),
            self.recent_log[-1],
            log_runtime(self.last2_mean()),
            med,
            mean,
            math.sqrt(var),
            self.ewma,
            self.ratio_ewma,
            math.log1p(max(now - self.last_end, 0.0)),
            since_submit,
            running,
        ]
