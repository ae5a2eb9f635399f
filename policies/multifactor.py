"""Slurm-like multifactor priority: age + job size, as a site has it today.

Mirrors Slurm's ``priority/multifactor`` with only these two factors weighted::

    priority = PriorityWeightAge * age_factor + PriorityWeightJobSize * size_factor
    age_factor  = min(wait, PriorityMaxAge) / PriorityMaxAge          (0..1)
    size_factor = size / cluster_size                                 (0..1)
                  or 1 - size / cluster_size with PriorityFavorSmall=YES

``size`` is the job's GPUs (CPUs for CPU-only jobs) and ``cluster_size`` the
capacity of its partition in the same unit (snapshot column ``cluster_size``;
without it, the largest job in the snapshot). Defaults follow Slurm's:
PriorityMaxAge 7 days, PriorityFavorSmall NO; weights 1000 each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from policies.base import Snapshot, column, job_size, waited


@dataclass(frozen=True)
class Multifactor:
    """Slurm multifactor (age + job size), normalised as Slurm does."""

    name: str = "multifactor"
    estimate: str = "limit"
    weight_age: float = 1000.0
    weight_job_size: float = 1000.0
    max_age: float = 7 * 86400.0
    favor_small: bool = False

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        age = np.minimum(waited(queue, now), self.max_age) / self.max_age
        size = job_size(queue)
        if "cluster_size" in queue:
            capacity = column(queue, "cluster_size")
        else:
            capacity = np.full(size.shape, size.max() if size.size else 1.0)
        share = np.clip(size / np.maximum(capacity, 1.0), 0.0, 1.0)
        size_factor = 1.0 - share if self.favor_small else share
        return self.weight_age * age + self.weight_job_size * size_factor


POLICY = Multifactor
