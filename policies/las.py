"""LAS: Tiresias' discretised two-queue least-attained-service policy.

Attained service = size x seconds already run (GPU-seconds, or CPU-seconds for
CPU-only jobs). Jobs below ``threshold`` sit in the high queue, the rest in
the low queue; within a queue, first come first served. The policy is
preemptive: the simulator lets a waiting job of a higher queue preempt
running jobs of a lower queue (:meth:`Las.preemption_class`); preempted
jobs keep their attained service and resume later with the remaining work.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Snapshot, column

_QUEUE_GAP = 1e13  # larger than any epoch-seconds submit time


@dataclass(frozen=True)
class Las:
    """Two-queue LAS (Tiresias); ``threshold`` in size-seconds (default 1 GPU-hour)."""

    name: str = "las"
    estimate: str = "limit"
    threshold: float = 3600.0

    def preemption_class(self, queue: Snapshot, now: float) -> np.ndarray:
        """0 for the high queue, 1 for the low queue (lower class preempts higher)."""
        attained = np.nan_to_num(column(queue, "attained_service", 0.0))
        return (attained >= self.threshold).astype(np.int64)

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        klass = self.preemption_class(queue, now)
        return -klass * _QUEUE_GAP - column(queue, "submit_time")


POLICY = Las
