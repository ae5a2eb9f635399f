"""SJF with true run times: an oracle, for reference only (not deployable)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Snapshot, column, job_size


@dataclass(frozen=True)
class ShortestJobFirst:
    """Priority = -(size x true run time): shortest true GPU (or CPU) time first.

    Uses the same service measure as QSSF so the two are comparable; its
    backfill reservations use the true run times too (``estimate="oracle"``).
    """

    name: str = "sjf"
    estimate: str = "oracle"

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        return -job_size(queue) * np.maximum(column(queue, "run_time"), 0.0)


POLICY = ShortestJobFirst
