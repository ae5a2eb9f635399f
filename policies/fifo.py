"""FIFO: first submitted, first served."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Snapshot, column


@dataclass(frozen=True)
class Fifo:
    """Priority = -submit time; backfill reservations use requested limits."""

    name: str = "fifo"
    estimate: str = "limit"

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        return -column(queue, "submit_time")


POLICY = Fifo
