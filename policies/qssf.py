"""QSSF: quasi-shortest-service-first on predicted GPU (or CPU) time, with ageing.

Service = size x predicted run time, where size is the job's GPUs, or its
CPUs (processors) for CPU-only jobs. Shortest predicted service runs first.

Ageing rule (so that no job waits forever): waiting ``age_scale`` seconds
is worth a factor e in predicted service::

    priority = wait / age_scale - ln(1 + size * predicted_runtime)

A newly arrived job has priority ``-ln(1 + service) <= 0``, so a job of
predicted service ``S`` outranks every newly arrived job once it has waited
``age_scale * ln(1 + S)`` seconds, and keeps rising: with the default
``age_scale`` of 6 hours a 1-GPU-hour job is overtaken by fresh work for at
most 2 days, a 100-GPU-day job for at most 4 days. Ageing is relative
(logarithmic in service), so two jobs that have waited about as long are
still ordered shortest-first: a congested queue does not degrade into
FIFO, as additive ageing (``- service + k * wait``) does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Snapshot, column, job_size, waited


@dataclass(frozen=True)
class Qssf:
    """Shortest predicted service first, with logarithmic ageing (see module docstring)."""

    name: str = "qssf"
    estimate: str = "prediction"
    age_scale: float = 6 * 3600.0  # seconds of waiting per e-fold of predicted service

    def __post_init__(self) -> None:
        if not self.age_scale > 0:
            raise ValueError(
                f"age_scale must be > 0 seconds (inf disables ageing), got {self.age_scale}"
            )

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        predicted = np.maximum(column(queue, "predicted_runtime"), 0.0)
        if np.isnan(predicted).any():
            raise ValueError("predicted_runtime has missing values; QSSF needs one per job")
        return waited(queue, now) / self.age_scale - np.log1p(job_size(queue) * predicted)


POLICY = Qssf
