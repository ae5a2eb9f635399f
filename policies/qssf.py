"""QSSF: quasi-shortest-service-first on predicted GPU (or CPU) time, with ageing.

Service = size x predicted run time, where size is the job's GPUs, or its
CPUs (processors) for CPU-only jobs. Shortest predicted service runs first.

Ageing rule (so that no job waits forever): every second a job waits takes
``age_rate`` seconds off its predicted run time for ordering purposes::

    priority = -size * (predicted_runtime - age_rate * wait)

A newly arrived job has priority ``-size * predicted_runtime < 0``; a job
that has waited ``predicted_runtime / age_rate`` seconds has priority >= 0
and therefore outranks every newly arrived job, and keeps rising. So a job
with prediction ``R`` is overtaken by fresh work for at most ``R / age_rate``
seconds (default 10 x its own predicted run time), after which only jobs that
have aged as much can pass it. Short jobs are barely affected (they age past
each other within seconds); long ones stop being starved by a stream of
short ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Snapshot, column, job_size, waited


@dataclass(frozen=True)
class Qssf:
    """Shortest predicted service first, with linear ageing (see module docstring)."""

    name: str = "qssf"
    estimate: str = "prediction"
    age_rate: float = 0.1

    def __post_init__(self) -> None:
        if not self.age_rate >= 0:
            raise ValueError(f"age_rate must be >= 0, got {self.age_rate}")

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        predicted = np.maximum(column(queue, "predicted_runtime"), 0.0)
        if np.isnan(predicted).any():
            raise ValueError("predicted_runtime has missing values; QSSF needs one per job")
        return -job_size(queue) * (predicted - self.age_rate * waited(queue, now))


POLICY = Qssf
