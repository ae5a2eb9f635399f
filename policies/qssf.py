"""QSSF: quasi-shortest-service-first on predicted GPU (or CPU) time, with ageing.

Service = size x predicted run time, where size is the job's GPUs, or its
CPUs (processors) for CPU-only jobs, and the prediction is capped at the
job's time limit where it has one (Slurm ends a job at its limit). Shortest
predicted service runs first::

    priority = -ln(1 + size * predicted_runtime)

Ageing rule (so that no job waits forever): a job that has waited
``max_wait`` seconds (default 7 days, Slurm's default ``PriorityMaxAge``) is
promoted above every job that has not, and promoted jobs run oldest first::

    priority = PROMOTED + wait            once wait >= max_wait

So no job is overtaken by later work once it has waited ``max_wait``: it
becomes the top job of its partition as soon as the jobs promoted before it
have started, and the top job holds a backfill reservation, so it starts at
the latest when the running jobs' estimates say it fits. Below ``max_wait``
the order is purely shortest-predicted-service first; a congested queue
therefore does not drift towards FIFO, which is what continuous ageing
(priority rising with wait for every job) does and what measurably costs
average JCT (see ``docs/simulator.md``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from policies.base import Snapshot, column, job_size, job_size_one, waited, waited_one

PROMOTED = 1e12  # above any -ln(1 + service); promoted jobs are ordered by wait


def capped_prediction(queue: Snapshot) -> np.ndarray:
    """``predicted_runtime`` (>= 0), capped at ``time_limit`` where that is known."""
    predicted = np.maximum(column(queue, "predicted_runtime"), 0.0)
    if np.isnan(predicted).any():
        raise ValueError("predicted_runtime has missing values; QSSF needs one per job")
    limit = column(queue, "time_limit", np.nan)
    return np.where(limit > 0, np.fmin(predicted, limit), predicted)


@dataclass(frozen=True)
class Qssf:
    """Shortest predicted service first, with max-wait promotion (see module docstring)."""

    name: str = "qssf"
    estimate: str = "prediction"
    max_wait: float = 7 * 86400.0  # seconds; inf disables the promotion

    def __post_init__(self) -> None:
        if not self.max_wait > 0:
            raise ValueError(
                f"max_wait must be > 0 seconds (inf: no promotion), got {self.max_wait}"
            )

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        predicted = capped_prediction(queue)
        wait = waited(queue, now)
        shortest_first = -np.log1p(job_size(queue) * predicted)
        return np.where(wait >= self.max_wait, PROMOTED + wait, shortest_first)

    def score_one(self, job: Mapping[str, float], now: float) -> float:
        """``self`` for one job given as Python floats: the service's per-``sbatch`` path,
        where numpy's fixed cost per call is most of the work (a test holds the two equal)."""
        predicted = max(job["predicted_runtime"], 0.0)
        if predicted != predicted:
            raise ValueError("predicted_runtime has missing values; QSSF needs one per job")
        limit = job.get("time_limit", math.nan)
        if limit > 0:
            predicted = min(predicted, limit)
        wait = waited_one(job, now)
        if wait >= self.max_wait:
            return PROMOTED + wait
        return -math.log1p(job_size_one(job) * predicted)


POLICY = Qssf
