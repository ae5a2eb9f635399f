"""The policy contract shared by the simulator and the live priority daemon.

A policy is a pure function of a queue snapshot and the current time that
returns one priority per queued job (higher = sooner). The snapshot is a
:class:`pandas.DataFrame` with the canonical job columns (see
:mod:`predictor.logs.schema`) plus, where the policy needs them:

``predicted_runtime``  the run-time prediction, s (QSSF)
``attained_service``   size x seconds already run (LAS; 0 for fresh jobs)
``wait``               seconds since submission (``now - submit_time`` if absent)
``cluster_size``       capacity of the job's partition in its size unit (multifactor)

Any mapping from column name to a 1-D array works as well as a DataFrame
(the simulator passes a light column view for speed), so policies only use
``queue[col]`` and NumPy arithmetic. A policy may also offer ``score_one(job,
now) -> float``, the same priority for one job given as a mapping of Python
floats: the service scores each ``sbatch`` alone, and on one row numpy's fixed
cost per call is most of the work (QSSF has it; tests hold it equal to the
vectorised call).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

Snapshot = pd.DataFrame | Mapping[str, Any]

#: policy name -> module under :mod:`policies` holding a ``POLICY`` factory
POLICY_MODULES: dict[str, str] = {
    "fifo": "policies.fifo",
    "sjf": "policies.sjf",
    "qssf": "policies.qssf",
    "las": "policies.las",
    "multifactor": "policies.multifactor",
}
POLICY_NAMES: tuple[str, ...] = tuple(POLICY_MODULES)

#: which run-time estimate a policy's backfill reservations use
ESTIMATES = ("limit", "prediction", "oracle")


@runtime_checkable
class Policy(Protocol):
    """What the simulator and the priority daemon need from a policy."""

    name: str
    #: run-time estimate for backfill reservations: "limit", "prediction" or "oracle"
    estimate: str

    def __call__(self, queue: Snapshot, now: float) -> np.ndarray:
        """Priorities (higher runs sooner), one per row of ``queue``."""
        ...


def column(queue: Snapshot, name: str, default: float | None = None) -> np.ndarray:
    """``queue[name]`` as a float array; ``default`` fills a missing column."""
    if name in queue:
        return np.asarray(queue[name], dtype=np.float64)
    if default is None:
        raise KeyError(f"queue snapshot lacks the column {name!r}")
    return np.full(_length(queue), default, dtype=np.float64)


def _length(queue: Snapshot) -> int:
    if isinstance(queue, pd.DataFrame):
        return len(queue)
    for value in queue.values():
        return len(value)
    return 0


def waited(queue: Snapshot, now: float) -> np.ndarray:
    """Seconds each job has waited: the ``wait`` column, else ``now - submit_time``."""
    if "wait" in queue:
        return np.maximum(column(queue, "wait"), 0.0)
    return np.maximum(now - column(queue, "submit_time"), 0.0)


def job_size(queue: Snapshot) -> np.ndarray:
    """The unit a job's service is measured in: GPUs where it asks for any, else CPUs (>= 1)."""
    gpus = column(queue, "gpus", 0.0)
    cpus = column(queue, "cpus", 1.0)
    return np.where(gpus > 0, gpus, np.fmax(cpus, 1.0))  # NaN GPUs count as 0, NaN CPUs as 1


def job_size_one(job: Mapping[str, float]) -> float:
    """:func:`job_size` of one job given as Python floats (the live single-job path)."""
    gpus, cpus = job.get("gpus", 0.0), job.get("cpus", 1.0)
    if gpus > 0:
        return gpus
    return 1.0 if cpus != cpus else max(cpus, 1.0)


def waited_one(job: Mapping[str, float], now: float) -> float:
    """:func:`waited` of one job given as Python floats (NaN stays NaN, as in numpy)."""
    wait = job["wait"] if "wait" in job else now - job["submit_time"]
    return max(wait, 0.0)


def get_policy(name: str, **params: Any) -> Policy:
    """The policy called ``name`` (``params`` override its defaults).

    Raises ``ValueError`` listing the known names when ``name`` is unknown.
    """
    key = name.strip().lower()
    if key not in POLICY_MODULES:
        raise ValueError(f"unknown policy {name!r}; known policies: {', '.join(POLICY_NAMES)}")
    module = importlib.import_module(POLICY_MODULES[key])
    return module.POLICY(**params)


def priority_to_site_factor(
    priorities: np.ndarray | pd.Series, scale: int = 1_000_000
) -> np.ndarray:
    """Map priorities onto Slurm ``site_factor`` integers in ``[0, scale]`` by rank.

    Rank-based so the result does not depend on a policy's units: the job
    that should run first gets ``scale``, the last gets 0, ties share a value.
    Use it with ``scontrol update job <id> SiteFactor=<value>``.
    """
    values = np.asarray(priorities, dtype=np.float64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.isnan(values).any():
        raise ValueError("priorities contain NaN")
    ranks = pd.Series(values).rank(method="dense").to_numpy() - 1.0
    top = ranks.max()
    if top == 0:
        return np.full(values.size, scale, dtype=np.int64)
    return np.rint(ranks / top * scale).astype(np.int64)
